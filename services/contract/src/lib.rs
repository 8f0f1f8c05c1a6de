//! The Ledgerline event contract.
//!
//! This crate is the only place that names streams, subjects, durable consumers and KV buckets,
//! and that sets each stream's limits. Services and additional subscribers take every name from
//! here, so a rename is one change.
//!
//! - [`v1`]: the protobuf messages (generated from `proto/ledgerline/v1`).
//! - [`subjects`], [`streams`], [`consumers`], [`buckets`]: the topology.
//! - [`headers`]: header names, and [`Schema`], which names the schema of every message.

pub mod buckets;
pub mod consumers;
pub mod headers;
pub mod streams;
pub mod subjects;

/// Generated protobuf types of package `ledgerline.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/ledgerline.v1.rs"));
}

/// A message type with a stable schema name, carried in the [`headers::SCHEMA`] header.
pub trait Schema: prost::Message + Default {
    /// Fully qualified protobuf name, e.g. `ledgerline.v1.OrderEvent`.
    const NAME: &'static str;
}

macro_rules! schema {
    ($($ty:ident),* $(,)?) => {
        $(impl Schema for v1::$ty {
            const NAME: &'static str = concat!("ledgerline.v1.", stringify!($ty));
        })*
    };
}

schema!(
    OrderEvent,
    CustomerEvent,
    RefundEvent,
    DeadLetter,
    XeroFact,
    XeroConnectionEvent,
    XeroUsageAlert,
    ReprocessRequest,
    ReprocessReply,
    XeroObservation,
    Finding,
    RepairRequest,
    StoreOrdersRequest,
    StoreOrdersReply,
);

/// Schema name of a raw Clarity webhook body stored in RAW (JSON, not protobuf).
pub const RAW_CLARITY_SCHEMA: &str = "clarity.webhook.2026-11";

/// `content-type` of protobuf payloads.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/protobuf";
/// `content-type` of JSON payloads (RAW).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Checks that a name is usable as one subject token: lower-case letters, digits, `-` and `_`.
///
/// Store names and tenant ids become subject tokens and consumer-name parts, so anything else
/// (dots, wildcards, spaces) would change what a subscription matches.
pub fn is_valid_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
