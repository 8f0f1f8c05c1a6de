//! The streams, with every limit set explicitly.
//!
//! Duplicate windows cost server memory: JetStream keeps each `Nats-Msg-Id` seen inside the
//! window in an in-memory map, roughly 100-150 bytes per id (the id string, its sequence and
//! timestamp, map overhead). Beyond a window, correctness rests on the next layer: the
//! normalizer's event ids are derived from the raw id, and the writer's ledger ignores versions it
//! has already written, so a late duplicate never makes a second Xero document.
//!
//! Every stream discards *new* messages when full: a publisher gets an error (webhook-ingest
//! answers 503, the normalizer naks and retries), and nothing already stored is dropped.

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const MIB: i64 = 1024 * 1024;

/// One stream of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name.
    pub name: &'static str,
    /// Subjects it captures.
    pub subjects: &'static [&'static str],
    /// What it holds.
    pub description: &'static str,
    /// Dedup window; see the module docs for its memory cost.
    pub duplicate_window: Duration,
    /// How long messages are kept.
    pub max_age: Duration,
    /// Default size limit; deployments may raise it ([`Limits`]).
    pub max_bytes: i64,
}

/// Webhook bodies as received: the system of record, replayable through a better normalizer.
///
/// Window 24 h: senders retry for up to about 3 days, but most retries come within hours. At
/// 100,000 webhooks a day the window holds ~100k ids, about 15 MiB of server memory.
pub const RAW: StreamSpec = StreamSpec {
    name: "RAW",
    subjects: &["raw.>"],
    description: "Webhook bodies as received, with the headers that matter.",
    duplicate_window: DAY,
    max_age: Duration::from_secs(365 * 24 * 3600),
    max_bytes: 1024 * MIB,
};

/// Canonical order events (`OrderEvent`, `RefundEvent`).
///
/// Window 2 h: duplicates here come from normalizer redeliveries seconds to minutes apart;
/// ~1.5 MiB of server memory per 10,000 events in the window.
pub const ORDERS: StreamSpec = StreamSpec {
    name: "ORDERS",
    subjects: &["orders.>"],
    description: "Canonical order and refund events (protobuf).",
    duplicate_window: Duration::from_secs(2 * 3600),
    max_age: Duration::from_secs(90 * 24 * 3600),
    max_bytes: 1024 * MIB,
};

/// Canonical customer events. Window 2 h, as [`ORDERS`].
pub const CUSTOMERS: StreamSpec = StreamSpec {
    name: "CUSTOMERS",
    subjects: &["customers.>"],
    description: "Canonical customer events (protobuf).",
    duplicate_window: Duration::from_secs(2 * 3600),
    max_age: Duration::from_secs(90 * 24 * 3600),
    max_bytes: 256 * MIB,
};

/// What the writer wrote to Xero. Window 1 h: one fact per confirmed write, retried only on a
/// lost PubAck.
pub const XERO: StreamSpec = StreamSpec {
    name: "XERO",
    subjects: &["xero.>"],
    description: "Facts about documents written to Xero, with Xero ids.",
    duplicate_window: HOUR,
    max_age: Duration::from_secs(90 * 24 * 3600),
    max_bytes: 512 * MIB,
};

/// Reconciliation findings. Window 1 h.
pub const RECON: StreamSpec = StreamSpec {
    name: "RECON",
    subjects: &["recon.>"],
    description: "Reconciliation findings and their resolution.",
    duplicate_window: HOUR,
    max_age: Duration::from_secs(30 * 24 * 3600),
    max_bytes: 256 * MIB,
};

/// What the reconciler read in Xero (`XeroObservation`), so its projection can be rebuilt from
/// streams alone. Window 1 h: one observation per read.
pub const OBSERVED: StreamSpec = StreamSpec {
    name: "OBSERVED",
    subjects: &["observed.>"],
    description: "Xero documents and payments as the reconciler read them (protobuf).",
    duplicate_window: HOUR,
    max_age: Duration::from_secs(90 * 24 * 3600),
    max_bytes: 256 * MIB,
};

/// Xero's webhook deliveries as received, stored before the reconciler answers 200. Window
/// 24 h: Xero retries a failed delivery with the same body (its id is the body's hash).
pub const XERO_HOOKS: StreamSpec = StreamSpec {
    name: "XERO_HOOKS",
    subjects: &["xerohooks.>"],
    description: "Xero webhook deliveries as received (JSON).",
    duplicate_window: DAY,
    max_age: Duration::from_secs(7 * 24 * 3600),
    max_bytes: 64 * MIB,
};

/// Repair requests from the reconciler to the writer (`RepairRequest`). Window 1 h.
pub const REPAIRS: StreamSpec = StreamSpec {
    name: "REPAIRS",
    subjects: &["repair.>"],
    description: "Requests that the writer check an order against Xero and converge.",
    duplicate_window: HOUR,
    max_age: Duration::from_secs(30 * 24 * 3600),
    max_bytes: 16 * MIB,
};

/// Dead letters, kept until an operator replays or discards them (a year at most).
/// Window 24 h: a stage that dead-letters the same message twice stores it once.
pub const DLQ: StreamSpec = StreamSpec {
    name: "DLQ",
    subjects: &["dlq.>"],
    description: "Messages a stage could not process, with reason and suggestions.",
    duplicate_window: DAY,
    max_age: Duration::from_secs(365 * 24 * 3600),
    max_bytes: 512 * MIB,
};

/// Every stream, in creation order.
pub const ALL: [StreamSpec; 9] = [
    RAW, ORDERS, CUSTOMERS, XERO, RECON, DLQ, OBSERVED, XERO_HOOKS, REPAIRS,
];

/// Deployment-specific settings applied on top of the specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Replicas per stream (3 in a clustered deployment).
    pub replicas: usize,
    /// Multiplies every stream's default `max_bytes` (e.g. 8 for a busy store). The defaults
    /// are small so a laptop or CI machine can reserve them all.
    pub max_bytes_factor: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_bytes_factor: 1,
        }
    }
}

impl StreamSpec {
    /// The JetStream configuration for this stream.
    pub fn config(&self, limits: Limits) -> Config {
        Config {
            name: self.name.to_owned(),
            description: Some(self.description.to_owned()),
            subjects: self.subjects.iter().map(|s| (*s).to_owned()).collect(),
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            discard: DiscardPolicy::New,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            max_bytes: self.max_bytes * i64::from(limits.max_bytes_factor.max(1)),
            num_replicas: limits.replicas.max(1),
            // Direct gets let the reconciler and tools read by sequence without a consumer.
            allow_direct: true,
            ..Default::default()
        }
    }
}
