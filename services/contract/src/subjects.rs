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

/// `orders.<store>.<created|updated|paid|cancelled|refunded>.<order id>.<order number>`: the
/// order's id and number are subject tokens (through [`token`]) so one order's events are read
/// by subject, without a scan ([`orders_of`], [`orders_numbered`]).
pub fn orders(store: &str, ty: OrderEventType, order_id: &str, order_number: &str) -> String {
    format!(
        "orders.{store}.{}.{}.{}",
        order_type_token(ty),
        token(order_id),
        token(order_number)
    )
}

/// Whether `subject` carries a refund: an ORDERS refund event (`orders.<store>.refunded...`,
/// with or without the order tokens of older subjects) or a raw completed return.
pub fn is_refund(subject: &str) -> bool {
    let mut t = subject.split('.');
    match (t.next(), t.next(), t.next()) {
        (Some("orders"), Some(_), Some("refunded")) => true,
        (Some("raw"), Some("clarity"), Some(_)) => subject.ends_with(".sales_return.completed"),
        _ => false,
    }
}

/// Every event of the order with id `order_id` in `store`.
pub fn orders_of(store: &str, order_id: &str) -> String {
    format!("orders.{store}.*.{}.*", token(order_id))
}

/// Every event of the order numbered `order_number` in `store`.
pub fn orders_numbered(store: &str, order_number: &str) -> String {
    format!("orders.{store}.*.*.{}", token(order_number))
}

/// A value from outside (an order id or number) as one subject token: ASCII letters, digits,
/// `-` and `_` are kept, anything else becomes `_`, at most 64 bytes; empty is `-`. Lossy, so a
/// reader checks the payload's own id: two values may share a token, never one value two.
pub fn token(value: &str) -> String {
    let t: String = value
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "-".to_owned() } else { t }
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

/// `xero.<tenant>.<contact|invoice|payment|credit_note|allocation>.<verb>.<store>.<id>`: the
/// order (or customer) the fact is about, from its `<store>/<id>` key, so one order's writes
/// are read by subject ([`xero_of`]).
pub fn xero(tenant: &str, kind: XeroDocumentKind, verb: XeroVerb, key: &str) -> String {
    let (store, id) = key.split_once('/').unwrap_or(("", key));
    format!(
        "{}.{}.{}",
        xero_kind_verb(tenant, kind, verb),
        token(store),
        token(id)
    )
}

/// Facts of every kind and verb, in any tenant, about the order (or customer) `id` of `store`.
pub fn xero_of(store: &str, id: &str) -> String {
    format!("xero.*.*.*.{}.{}", token(store), token(id))
}

/// Facts of one kind and verb in any of its tenant's orders: `xero.<tenant>.<kind>.<verb>.>`.
pub fn xero_facts(tenant: &str, kind: XeroDocumentKind, verb: XeroVerb) -> String {
    format!("{}.>", xero_kind_verb(tenant, kind, verb))
}

fn kind_token(kind: XeroDocumentKind) -> &'static str {
    match kind {
        XeroDocumentKind::Contact => "contact",
        XeroDocumentKind::Invoice => "invoice",
        XeroDocumentKind::Payment => "payment",
        XeroDocumentKind::CreditNote => "credit_note",
        XeroDocumentKind::Allocation => "allocation",
        XeroDocumentKind::Unspecified => "unknown",
    }
}

fn xero_kind_verb(tenant: &str, kind: XeroDocumentKind, verb: XeroVerb) -> String {
    let k = kind_token(kind);
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

/// `recon.<store>.<kind>.<order id>`: a finding about one order, opened or closed.
pub fn recon(store: &str, kind: &str, order_id: &str) -> String {
    format!("recon.{}.{kind}.{}", token(store), token(order_id))
}

/// `observed.<tenant>.<invoice|credit_note|payment>`: what the reconciler read in Xero.
pub fn observed(tenant: &str, kind: XeroDocumentKind) -> String {
    format!("observed.{tenant}.{}", kind_token(kind))
}

/// Every observation.
pub const OBSERVED_ALL: &str = "observed.>";

/// `xerohooks.<received>`: a Xero webhook delivery as received.
pub const XERO_HOOK_DELIVERY: &str = "xerohooks.received";

/// `repair.<tenant>.<store>.<order id>`: a repair request for the writer of `tenant`.
pub fn repair(tenant: &str, store: &str, order_id: &str) -> String {
    format!("repair.{tenant}.{}.{}", token(store), token(order_id))
}

/// Every repair request for `tenant`'s writer.
pub fn repairs_of(tenant: &str) -> String {
    format!("repair.{tenant}.>")
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

/// Core-NATS request subject (`StoreOrdersRequest` → `StoreOrdersReply`) asking
/// webhook-ingest for a store's orders from its REST API, and optionally to resync them
/// (the reconciler, operators). Replicas answer as one queue group.
pub fn store_orders(store: &str) -> String {
    format!("ctl.store.{}.orders", token(store))
}

/// Every store's [`store_orders`] requests.
pub const STORE_ORDERS_ALL: &str = "ctl.store.*.orders";

/// Queue group of [`store_orders`].
pub const STORE_ORDERS_GROUP: &str = "webhook-ingest";

/// Core-NATS request subject asking the normalizer to reprocess RAW sequences
/// (`ReprocessRequest` → `ReprocessReply`); replicas answer as one queue group.
pub const NORMALIZER_REPROCESS: &str = "ctl.normalizer.reprocess";

/// Queue group of [`NORMALIZER_REPROCESS`].
pub const NORMALIZER_REPROCESS_GROUP: &str = "normalizer";
