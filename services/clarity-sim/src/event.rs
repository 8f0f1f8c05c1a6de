//! One generated webhook event and how it is signed for delivery.

use crate::model::EventType;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ledgerline_platform::standard_webhooks::{self, Secret};

/// Header naming the event type (unsigned, informational).
pub const HEADER_TOPIC: &str = "x-clarity-topic";
/// Header naming the store (unsigned, informational).
pub const HEADER_STORE: &str = "x-clarity-store";
/// Header counting delivery attempts from 1 (unsigned, informational).
pub const HEADER_ATTEMPT: &str = "x-clarity-attempt";

/// A generated webhook: the exact body bytes plus what a sender and a test need to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_...`: the body's `id` and the `webhook-id` header.
    pub id: String,
    /// The body's `type`.
    pub event_type: EventType,
    /// Store key (`main`).
    pub store: String,
    /// Events with the same key are delivered in order (unless reordering is injected):
    /// `order:<ID>` for an order and its returns, `account:<ID>` for an account.
    pub partition_key: String,
    /// The entity's `Version` in this snapshot.
    pub version: u32,
    /// Simulated time of the change.
    pub occurred_at: DateTime<Utc>,
    /// The JSON body, byte for byte as signed and sent.
    pub body: Bytes,
}

/// The headers of one delivery attempt, in sending order.
pub type Headers = Vec<(&'static str, String)>;

/// Headers for one attempt: the three signed Standard Webhooks headers (one `v1` signature per
/// secret, for rotation) plus `content-type` and the informational `x-clarity-*` ones.
pub fn sign_event_with(secrets: &[Secret], event: &Event, timestamp: i64, attempt: u32) -> Headers {
    vec![
        ("content-type", "application/json".to_owned()),
        (standard_webhooks::HEADER_ID, event.id.clone()),
        (standard_webhooks::HEADER_TIMESTAMP, timestamp.to_string()),
        (
            standard_webhooks::HEADER_SIGNATURE,
            standard_webhooks::signature_header(secrets, &event.id, timestamp, &event.body),
        ),
        (HEADER_TOPIC, event.event_type.as_str().to_owned()),
        (HEADER_STORE, event.store.clone()),
        (HEADER_ATTEMPT, attempt.to_string()),
    ]
}

/// [`sign_event_with`] for one secret and the first attempt.
pub fn sign_event(secret: &Secret, event: &Event, timestamp: i64) -> Headers {
    sign_event_with(std::slice::from_ref(secret), event, timestamp, 1)
}
