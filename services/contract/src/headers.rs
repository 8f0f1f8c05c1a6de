//! Header names carried on messages. `Nats-Msg-Id` is on every message (JetStream dedup).

/// JetStream de-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state.
pub const TRACESTATE: &str = "tracestate";
/// Payload media type.
pub const CONTENT_TYPE: &str = "content-type";
/// The schema of the payload, e.g. `ledgerline.v1.OrderEvent` (see [`crate::Schema`]).
pub const SCHEMA: &str = "Ledgerline-Schema";

/// RAW: the Standard Webhooks id of the delivery (equals the body's `id`).
pub const WEBHOOK_ID: &str = "Webhook-Id";
/// RAW: the sender's timestamp of the attempt that was stored.
pub const WEBHOOK_TIMESTAMP: &str = "Webhook-Timestamp";
/// RAW: the event type (body `type`).
pub const CLARITY_TOPIC: &str = "X-Clarity-Topic";
/// RAW: which configured store the webhook arrived for.
pub const CLARITY_STORE: &str = "X-Clarity-Store";
/// RAW: the sender's attempt number.
pub const CLARITY_ATTEMPT: &str = "X-Clarity-Attempt";
/// RAW: when webhook-ingest received it (RFC 3339).
pub const RECEIVED_AT: &str = "Ledgerline-Received-At";
/// RAW: `webhook` or `resync`.
pub const ORIGIN: &str = "Ledgerline-Origin";
/// DLQ replays: the dead-letter id being replayed.
pub const REPLAY_OF: &str = "Ledgerline-Replay-Of";
/// DLQ replays after a fix: the `mapping_overlay` revision that holds the fix; a stage waits
/// until its mapping has read that far before processing the replay.
pub const OVERLAY_REVISION: &str = "Ledgerline-Overlay-Revision";
/// Repairs: the reconciler's finding an ORDERS message was sent again for.
pub const REPAIR_OF: &str = "Ledgerline-Repair-Of";
