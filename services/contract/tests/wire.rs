//! Every contract message round-trips, and its encoding matches a checked-in binary fixture, so
//! an accidental wire change (a renumbered field, a changed type) fails here.
//! Regenerate after an intended, compatible change with `UPDATE_FIXTURES=1 cargo test -p ledgerline-contract`.

use ledgerline_contract::Schema;
use ledgerline_contract::v1::*;
use prost::Message;
use std::path::PathBuf;

fn money(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.to_owned(),
        currency: "NZD".to_owned(),
    })
}

fn address() -> Address {
    Address {
        company: "Acme Trading Ltd".into(),
        lines: vec!["12 Queen Street".into(), "Level 3".into()],
        city: "Auckland".into(),
        region_code: "AUK".into(),
        region_name: "Auckland".into(),
        postal_code: "1010".into(),
        country_code: "NZ".into(),
        country_name: "New Zealand".into(),
        original: "new zealand".into(),
    }
}

fn customer() -> Customer {
    Customer {
        identity_key: "acme-trading".into(),
        account_id: "77".into(),
        account_key: "ACME-TRADING".into(),
        account_name: "Acme Trading Ltd".into(),
        email: "accounts@acmetrading.example.co.nz".into(),
        first_name: "Jane".into(),
        last_name: "Doe".into(),
        company: "Acme Trading Ltd".into(),
        phone: "+64 9 555 0100".into(),
        billing_address: Some(address()),
        shipping_address: Some(address()),
        attributes: [("PaymentTermsDays".to_owned(), "20".to_owned())].into(),
        is_guest: false,
        version: 3,
        active: true,
    }
}

fn line() -> LineItem {
    LineItem {
        kind: LineKind::Product as i32,
        source_id: "5001".into(),
        sku: "WID-001".into(),
        description: "Widget, steel".into(),
        quantity: "2".into(),
        unit_price: money("40.0000"),
        discount: money("5.00"),
        tax_amount: money("11.25"),
        tax_rate: "0.15".into(),
        source_tax_code: "GST15".into(),
        taxable: true,
        line_total: money("75.00"),
        attributes: [("Colour".to_owned(), "Grey".to_owned())].into(),
    }
}

fn refund() -> Refund {
    Refund {
        id: "7002".into(),
        return_key: "RMA-000088".into(),
        amount: money("23.00"),
        method: "Credit Card".into(),
        transaction_number: "re_5c1d77a0".into(),
        original_payment_id: "7001".into(),
        refunded_at: "2026-11-24T15:40:08.000Z".into(),
        reason: "Damaged in transit".into(),
        lines: vec![line()],
        subtotal: money("20.00"),
        tax: money("3.00"),
        version: 1,
    }
}

fn meta(id: &str) -> Option<EventMeta> {
    Some(EventMeta {
        event_id: id.into(),
        source_event_id: "evt_01JD7Q0K4V9S3T6XWZ2M8N5B1C".into(),
        mapping_revision: "r-3f2a9c".into(),
        occurred_at: "2026-11-20T09:15:02.123Z".into(),
        store: "main".into(),
        source_type: "sales_order.created".into(),
        // 0 is not on the wire: the fixtures from before the field still match.
        raw_sequence: 0,
    })
}

fn order() -> Order {
    Order {
        id: "1042".into(),
        number: "SO-001042".into(),
        store: "main".into(),
        version: 4,
        status: OrderStatus::Paid as i32,
        source_status: "Full Payment Received".into(),
        currency: "NZD".into(),
        tax_included: false,
        customer: Some(customer()),
        billing_address: Some(address()),
        shipping_address: Some(address()),
        lines: vec![line()],
        totals: Some(Totals {
            subtotal: money("100.00"),
            shipping: money("10.00"),
            handling: money("0.00"),
            fees: money("0.00"),
            discounts: money("-5.00"),
            tax: money("15.75"),
            total: money("120.75"),
        }),
        payments: vec![Payment {
            id: "7001".into(),
            amount: money("120.75"),
            method: "Credit Card".into(),
            transaction_number: "txn_9f3a61c2".into(),
            received_at: "2026-11-20T09:15:01.500Z".into(),
            received: true,
            status: "Payment Received".into(),
        }],
        refunds: vec![refund()],
        attributes: [("CampaignSource".to_owned(), "newsletter-2026-11".to_owned())].into(),
        tracking: [("Sales Channel".to_owned(), "B2B Portal".to_owned())].into(),
        created_at: "2026-11-20T09:15:01.870Z".into(),
        updated_at: "2026-11-20T09:15:01.870Z".into(),
        due_date: "2026-12-20".into(),
        purchase_order_number: "PO-7781".into(),
        amount_paid: money("120.75"),
        balance_due: money("0.00"),
    }
}

fn check<M: Schema + PartialEq + std::fmt::Debug>(message: M) {
    let bytes = message.encode_to_vec();
    assert_eq!(
        M::decode(bytes.as_slice()).unwrap(),
        message,
        "{} round-trips",
        M::NAME
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{}.bin", M::NAME));
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let fixture = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
    assert_eq!(
        bytes,
        fixture,
        "{} encodes differently from its fixture: a wire change",
        M::NAME
    );
    assert_eq!(
        M::decode(fixture.as_slice()).unwrap(),
        message,
        "the fixture still decodes to the same message"
    );
}

#[test]
fn order_event() {
    check(OrderEvent {
        meta: meta("oe-1"),
        r#type: OrderEventType::Paid as i32,
        order: Some(order()),
    });
}

#[test]
fn customer_event() {
    check(CustomerEvent {
        meta: meta("ce-1"),
        r#type: CustomerEventType::Updated as i32,
        customer: Some(customer()),
    });
}

#[test]
fn refund_event() {
    check(RefundEvent {
        meta: meta("re-1"),
        order_id: "1042".into(),
        order_number: "SO-001042".into(),
        order_version: 4,
        refund: Some(refund()),
        currency: "NZD".into(),
        tax_included: false,
    });
}

fn dead_letter_v1() -> DeadLetter {
    DeadLetter {
        id: "dl-1".into(),
        stage: Stage::XeroWriter as i32,
        reason_class: ReasonClass::XeroValidation as i32,
        error: "Account code '999' is not a valid code for this document.".into(),
        original_subject: "orders.main.created".into(),
        original_headers: [("Nats-Msg-Id".to_owned(), "oe-1".to_owned())].into(),
        original_payload: vec![1, 2, 3, 250],
        attempts: 3,
        suggestions: vec![Suggestion {
            field: "AccountCode".into(),
            current_value: "999".into(),
            suggested_value: "200".into(),
            score: 0.9,
            reason: "revenue account named Sales".into(),
            rule: String::new(),
        }],
        failed_at: "2026-11-20T09:15:03Z".into(),
        store: "main".into(),
        entity_key: "main/1042".into(),
        tenant: "tenant-1".into(),
        ..Default::default()
    }
}

#[test]
fn dead_letter() {
    let mut v2 = dead_letter_v1();
    v2.failed_at = "2026-11-20T09:15:03.120Z".into();
    v2.suggestions[0].rule = "[accounts]\nproduct = \"200\"\n".into();
    v2.original_stream = "ORDERS".into();
    v2.original_sequence = 1042;
    v2.fault = Some(Fault {
        code: "inactive_account".into(),
        field: "AccountCode".into(),
        value: "999".into(),
    });
    v2.payload_truncated = true;
    v2.original_size = 700_000;
    v2.contract_version = 2;
    check(v2);
}

/// A dead letter written under contract v1 (before stream, sequence, fault and rules) still
/// decodes, its new fields empty, and reads as version 0.
#[test]
fn dead_letter_v1_stays_readable() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ledgerline.v1.DeadLetter.v1.bin");
    let bytes = std::fs::read(&path).unwrap();
    let old = DeadLetter::decode(bytes.as_slice()).unwrap();
    assert_eq!(old, dead_letter_v1());
    assert_eq!(old.contract_version, 0);
    assert!(old.fault.is_none() && old.original_stream.is_empty());
    assert!(old.suggestions[0].rule.is_empty());
    assert_eq!(old.encode_to_vec(), bytes, "v1 content encodes as it did");
}

#[test]
fn xero_fact() {
    check(XeroFact {
        fact_id: "xf-1".into(),
        tenant_id: "tenant-1".into(),
        kind: XeroDocumentKind::Invoice as i32,
        verb: XeroVerb::Created as i32,
        xero_id: "5b0fc8a2-3e6b-4c9b-9b1a-2f3c4d5e6f70".into(),
        number: "SO-001042".into(),
        store: "main".into(),
        order_key: "main/1042".into(),
        order_version: 4,
        mapping_revision: "r-3f2a9c".into(),
        total: money("120.75"),
        amount_due: money("0.00"),
        tax: money("15.75"),
        status: "PAID".into(),
        written_at: "2026-11-20T09:15:04Z".into(),
        source_event_id: "oe-1".into(),
        // The report's fields (account, rounding, rates) are new and empty here: the golden
        // bytes show an older fact stays readable as it was.
        ..Default::default()
    });
}

#[test]
fn xero_connection_event() {
    check(XeroConnectionEvent {
        event_id: "xc-1".into(),
        tenant_id: "tenant-1".into(),
        state: XeroConnectionState::Disconnected as i32,
        reason: "invalid_grant".into(),
        occurred_at: "2026-11-20T09:15:04Z".into(),
    });
}

#[test]
fn names_and_tokens() {
    use ledgerline_contract::{consumers, subjects};
    assert_eq!(OrderEvent::NAME, "ledgerline.v1.OrderEvent");
    assert_eq!(
        subjects::orders("main", OrderEventType::Paid, "1042", "SO-001042"),
        "orders.main.paid.1042.SO-001042"
    );
    // Outside values become one token each; an order's events and facts read by subject.
    assert_eq!(
        subjects::orders("main", OrderEventType::Paid, "a.b", "SO 7/x"),
        "orders.main.paid.a_b.SO_7_x"
    );
    assert_eq!(
        subjects::orders("main", OrderEventType::Paid, "", ""),
        "orders.main.paid.-.-"
    );
    assert_eq!(subjects::orders_of("main", "1042"), "orders.main.*.1042.*");
    assert_eq!(
        subjects::orders_numbered("main", "SO-001042"),
        "orders.main.*.*.SO-001042"
    );
    assert_eq!(
        subjects::xero(
            "t-1",
            XeroDocumentKind::Invoice,
            XeroVerb::Created,
            "main/1042"
        ),
        "xero.t-1.invoice.created.main.1042"
    );
    assert_eq!(subjects::xero_of("main", "1042"), "xero.*.*.*.main.1042");
    assert_eq!(
        subjects::xero_connection("t-1", XeroConnectionState::Disconnected),
        "xero.t-1.connection.lost"
    );
    assert_eq!(
        subjects::raw_clarity("main", "sales_order.created"),
        "raw.clarity.main.sales_order.created"
    );
    assert_eq!(
        consumers::writer_orders_name("6a1e.tenant"),
        "xero-writer-6a1e_tenant"
    );
    let c = consumers::writer_orders("t1", &["main".into(), "outlet".into()]);
    assert_eq!(
        c.config().filter_subjects,
        vec!["orders.main.>", "orders.outlet.>"]
    );
    assert!(ledgerline_contract::is_valid_token("main-2_b"));
    for bad in ["Main", "a.b", "a*", "", "a b", ">"] {
        assert!(!ledgerline_contract::is_valid_token(bad), "{bad}");
    }
}
