//! Subject names. Tokens that come from outside (store names, tenant ids) must pass
//! [`crate::is_valid_token`] before they are used here.

use crate::v1::{
    CustomerEventType, OrderEventType, ReasonClass, Stage, XeroConnectionState, XeroDocumentKind,
    XeroUsageKind, XeroVerb,
};

/// `raw.clarity.<store>.<topic>`; the topic keeps its dot (`sales_order.created`).
pub fn raw_clarity(store: &str, topic: &str) -> String {
    format!("raw.clarity.{store}.{topic}")
}

/// Every raw Clarity event of one store.
pub fn raw_clarity_store(store: &str) -> String {
    format!("raw.clarity.{store}.>")
}

/// Every raw event.
pub const RAW_ALL: &str = "raw.>";

/// `orders.<store>.<created|updated|paid|cancelled|refunded>`.
pub fn orders(store: &str, ty: OrderEventType) -> String {
    format!("orders.{store}.{}", order_type_token(ty))
}

/// Every order event of one store.
pub fn orders_store(store: &str) -> String {
    format!("orders.{store}.>")
}

/// Every order event.
pub const ORDERS_ALL: &str = "orders.>";

/// The last subject token of an order event type.
pub fn order_type_token(ty: OrderEventType) -> &'static str {
    match ty {
        OrderEventType::Created => "created",
        OrderEventType::Updated | OrderEventType::Unspecified => "updated",
        OrderEventType::Paid => "paid",
        OrderEventType::Cancelled => "cancelled",
        OrderEventType::Refunded => "refunded",
    }
}

/// `customers.<store>.<created|updated>`.
pub fn customers(store: &str, ty: CustomerEventType) -> String {
    let t = match ty {
        CustomerEventType::Created => "created",
        _ => "updated",
    };
    format!("customers.{store}.{t}")
}

/// Every customer event of one store.
pub fn customers_store(store: &str) -> String {
    format!("customers.{store}.>")
}

/// Every customer event.
pub const CUSTOMERS_ALL: &str = "customers.>";

/// `xero.<tenant>.<contact|invoice|payment|credit_note|allocation>.<verb>`.
pub fn xero(tenant: &str, kind: XeroDocumentKind, verb: XeroVerb) -> String {
    let k = match kind {
        XeroDocumentKind::Contact => "contact",
        XeroDocumentKind::Invoice => "invoice",
        XeroDocumentKind::Payment => "payment",
        XeroDocumentKind::CreditNote => "credit_note",
        XeroDocumentKind::Allocation => "allocation",
        XeroDocumentKind::Unspecified => "unknown",
    };
    let v = match verb {
        XeroVerb::Created => "created",
        XeroVerb::Updated => "updated",
        XeroVerb::Voided => "voided",
        XeroVerb::Deleted => "deleted",
        XeroVerb::Adopted => "adopted",
        XeroVerb::Recorded => "recorded",
        XeroVerb::Unspecified => "unknown",
    };
    format!("xero.{tenant}.{k}.{v}")
}

/// Every Xero fact and connection event (tell them apart by the schema header).
pub const XERO_ALL: &str = "xero.>";

/// `xero.<tenant>.connection.<lost|restored>`: the writer lost or regained its authorisation
/// for a tenant (payload `XeroConnectionEvent`).
pub fn xero_connection(tenant: &str, state: XeroConnectionState) -> String {
    let s = match state {
        XeroConnectionState::Connected => "restored",
        XeroConnectionState::Disconnected | XeroConnectionState::Unspecified => "lost",
    };
    format!("xero.{tenant}.connection.{s}")
}

/// `xero.<scope>.usage.<day_calls|egress>`: an allowance of Xero's passed a threshold (payload
/// `XeroUsageAlert`); `scope` is the tenant for day calls, `app` for egress (the app's).
pub fn xero_usage(scope: &str, kind: XeroUsageKind) -> String {
    let k = match kind {
        XeroUsageKind::DayCalls => "day_calls",
        XeroUsageKind::MonthEgress => "egress",
        XeroUsageKind::Unspecified => "unknown",
    };
    format!("xero.{scope}.usage.{k}")
}

/// `recon.<store>.<finding>`.
pub fn recon(store: &str, finding: &str) -> String {
    format!("recon.{store}.{finding}")
}

/// Every reconciliation finding.
pub const RECON_ALL: &str = "recon.>";

/// `dlq.<stage>.<reason>`.
pub fn dlq(stage: Stage, reason: ReasonClass) -> String {
    let s = match stage {
        Stage::Ingest => "ingest",
        Stage::Normalizer => "normalizer",
        Stage::XeroWriter => "xero_writer",
        Stage::Reconciler => "reconciler",
        Stage::Unspecified => "unknown",
    };
    let r = match reason {
        ReasonClass::Malformed => "malformed",
        ReasonClass::Invalid => "invalid",
        ReasonClass::Unsupported => "unsupported",
        ReasonClass::Exhausted => "exhausted",
        ReasonClass::Mapping => "mapping",
        ReasonClass::XeroValidation => "xero_validation",
        ReasonClass::Policy => "policy",
        ReasonClass::Unspecified => "unknown",
    };
    format!("dlq.{s}.{r}")
}

/// Every dead letter.
pub const DLQ_ALL: &str = "dlq.>";

/// Core-NATS request subject asking webhook-ingest to resync a store (reconciler, operators).
pub fn resync_request(store: &str) -> String {
    format!("ctl.resync.{store}")
}

/// Core-NATS request subject asking the normalizer to reprocess RAW sequences
/// (`ReprocessRequest` → `ReprocessReply`); replicas answer as one queue group.
pub const NORMALIZER_REPROCESS: &str = "ctl.normalizer.reprocess";

/// Queue group of [`NORMALIZER_REPROCESS`].
pub const NORMALIZER_REPROCESS_GROUP: &str = "normalizer";
