//! Canonical events as JSON, for golden files and `replay --dry-run` diffs. Hand-written so the
//! contract crate stays serde-free; enums are written by their protobuf names.

use crate::transform::{Canonical, Message};
use ledgerline_contract::v1::{
    Address, Customer, EventMeta, LineItem, LineKind, Money, Order, OrderStatus, Payment, Refund,
    Totals,
};
use ledgerline_contract::v1::{CustomerEventType, OrderEventType};
use serde_json::{Map, Value, json};

/// One canonical event with its subject and id.
pub fn canonical(c: &Canonical) -> Value {
    let body = match &c.message {
        Message::Order(e) => json!({
            "meta": meta(e.meta.as_ref()),
            "type": OrderEventType::try_from(e.r#type).map(|t| t.as_str_name()).unwrap_or("?"),
            "order": e.order.as_ref().map(order),
        }),
        Message::Customer(e) => json!({
            "meta": meta(e.meta.as_ref()),
            "type": CustomerEventType::try_from(e.r#type).map(|t| t.as_str_name()).unwrap_or("?"),
            "customer": e.customer.as_ref().map(customer),
        }),
        Message::Refund(e) => json!({
            "meta": meta(e.meta.as_ref()),
            "order_id": e.order_id,
            "order_number": e.order_number,
            "order_version": e.order_version,
            "currency": e.currency,
            "tax_included": e.tax_included,
            "refund": e.refund.as_ref().map(refund),
        }),
    };
    json!({
        "subject": c.subject,
        "event_id": c.event_id,
        "schema": c.message.schema(),
        "event": body,
    })
}

fn meta(m: Option<&EventMeta>) -> Value {
    let Some(m) = m else { return Value::Null };
    json!({
        "event_id": m.event_id,
        "source_event_id": m.source_event_id,
        "mapping_revision": m.mapping_revision,
        "occurred_at": m.occurred_at,
        "store": m.store,
        "source_type": m.source_type,
    })
}

fn money(m: &Option<Money>) -> Value {
    match m {
        Some(m) => Value::String(format!("{} {}", m.amount, m.currency)),
        None => Value::Null,
    }
}

fn address(a: &Option<Address>) -> Value {
    let Some(a) = a else { return Value::Null };
    let mut v = json!({
        "company": a.company,
        "lines": a.lines,
        "city": a.city,
        "region_code": a.region_code,
        "region_name": a.region_name,
        "postal_code": a.postal_code,
        "country_code": a.country_code,
        "country_name": a.country_name,
    });
    if !a.original.is_empty() {
        v["original"] = Value::String(a.original.clone());
    }
    v
}

fn map(m: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

fn customer(c: &Customer) -> Value {
    json!({
        "identity_key": c.identity_key,
        "account_id": c.account_id,
        "account_key": c.account_key,
        "account_name": c.account_name,
        "email": c.email,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "phone": c.phone,
        "billing_address": address(&c.billing_address),
        "shipping_address": address(&c.shipping_address),
        "attributes": map(&c.attributes),
        "is_guest": c.is_guest,
        "version": c.version,
        "active": c.active,
    })
}

fn line(l: &LineItem) -> Value {
    json!({
        "kind": LineKind::try_from(l.kind).map(|k| k.as_str_name()).unwrap_or("?"),
        "source_id": l.source_id,
        "sku": l.sku,
        "description": l.description,
        "quantity": l.quantity,
        "unit_price": money(&l.unit_price),
        "discount": money(&l.discount),
        "line_total": money(&l.line_total),
        "tax_amount": money(&l.tax_amount),
        "tax_rate": l.tax_rate,
        "source_tax_code": l.source_tax_code,
        "taxable": l.taxable,
        "attributes": map(&l.attributes),
    })
}

fn totals(t: &Option<Totals>) -> Value {
    let Some(t) = t else { return Value::Null };
    json!({
        "subtotal": money(&t.subtotal),
        "shipping": money(&t.shipping),
        "handling": money(&t.handling),
        "fees": money(&t.fees),
        "discounts": money(&t.discounts),
        "tax": money(&t.tax),
        "total": money(&t.total),
    })
}

fn payment(p: &Payment) -> Value {
    json!({
        "id": p.id,
        "amount": money(&p.amount),
        "method": p.method,
        "transaction_number": p.transaction_number,
        "received_at": p.received_at,
        "received": p.received,
        "status": p.status,
    })
}

fn refund(r: &Refund) -> Value {
    json!({
        "id": r.id,
        "return_key": r.return_key,
        "amount": money(&r.amount),
        "method": r.method,
        "transaction_number": r.transaction_number,
        "original_payment_id": r.original_payment_id,
        "refunded_at": r.refunded_at,
        "reason": r.reason,
        "lines": r.lines.iter().map(line).collect::<Vec<_>>(),
        "subtotal": money(&r.subtotal),
        "tax": money(&r.tax),
        "version": r.version,
    })
}

fn order(o: &Order) -> Value {
    json!({
        "id": o.id,
        "number": o.number,
        "store": o.store,
        "version": o.version,
        "status": OrderStatus::try_from(o.status).map(|s| s.as_str_name()).unwrap_or("?"),
        "source_status": o.source_status,
        "currency": o.currency,
        "tax_included": o.tax_included,
        "customer": o.customer.as_ref().map(customer),
        "billing_address": address(&o.billing_address),
        "shipping_address": address(&o.shipping_address),
        "lines": o.lines.iter().map(line).collect::<Vec<_>>(),
        "totals": totals(&o.totals),
        "payments": o.payments.iter().map(payment).collect::<Vec<_>>(),
        "attributes": map(&o.attributes),
        "tracking": map(&o.tracking),
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "due_date": o.due_date,
        "purchase_order_number": o.purchase_order_number,
        "amount_paid": money(&o.amount_paid),
        "balance_due": money(&o.balance_due),
    })
}
