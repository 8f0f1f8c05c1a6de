//! Mapping rules, policies and operating modes.

use crate::helpers::*;
use ledgerline_contract::v1::{LineKind, OrderEventType, OrderStatus, ReasonClass};
use rust_decimal_macros::dec;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn wait_dead_letter(stack: &Stack) -> ledgerline_contract::v1::DeadLetter {
    stack.wait_dead_letters(1, T).await.remove(0)
}

/// Asserts that `check` stays false for a while (bounded), for "nothing happens" cases.
async fn stays_absent(stack: &Stack, number: &str) {
    for _ in 0..10 {
        assert!(
            invoice(&stack.sandbox.documents().await, number).is_none(),
            "{number} was written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tax_codes_map_to_tax_types_and_four_decimal_prices_keep_their_digits() {
    let stack = Stack::start(&[]).await;
    let o = order(
        "SO-6000",
        1,
        OrderStatus::Confirmed,
        vec![
            line(LineKind::Product, "Precise", "3", "3.3333", "GST15"),
            line(LineKind::Product, "Aussie", "1", "10.00", "GST10"),
            line(LineKind::Fee, "Export fee", "1", "5.00", "GST0"),
        ],
        customer("Kim", "Ng", "kim@example.com"),
    );
    assert_eq!(total_of(&o), dec!(27.50));
    stack
        .publish(&event(&o, OrderEventType::Created, "t1"))
        .await;
    let docs = stack
        .wait_docs("SO-6000", T, |d| invoice(d, "SO-6000").is_some())
        .await;
    let inv = invoice(&docs, "SO-6000").unwrap();
    let lines = inv["LineItems"].as_array().unwrap();
    assert_eq!(lines[0]["TaxType"], "OUTPUT2");
    assert_eq!(
        d(&lines[0]["UnitAmount"]),
        dec!(3.3333),
        "unitdp=4 kept the price"
    );
    assert_eq!(lines[1]["TaxType"], "TAX001");
    assert_eq!(lines[2]["TaxType"], "ZERORATED");
    assert_eq!(lines[2]["AccountCode"], "260", "fees to other revenue");
    assert_eq!(d(&inv["Total"]), dec!(27.50));
    assert_eq!(
        inv["Date"]
            .as_str()
            .map(|s| s.contains("1763550000000") || !s.is_empty()),
        Some(true)
    );
}

#[tokio::test]
async fn a_tax_inclusive_order_is_invoiced_inclusive_to_the_cent() {
    let stack = Stack::start(&[]).await;
    // As the normalizer emits a tax-included order: gross unit prices, net discounts, net
    // line totals with their tax.
    let gross = |desc: &str, qty: &str, unit: &str, discount: &str, net: &str, tax: &str| {
        let mut l = line(LineKind::Product, desc, qty, unit, "GST15");
        l.discount = m(discount);
        l.line_total = m(net);
        l.tax_amount = m(tax);
        l
    };
    let mut o = order(
        "SO-6100",
        1,
        OrderStatus::Confirmed,
        vec![
            gross("Gross A", "1", "23.00", "0", "20.00", "3.00"),
            gross("Gross B", "2", "7.77", "0", "13.51", "2.03"),
            gross("Discounted", "2", "11.50", "2.00", "18.00", "2.70"),
        ],
        customer("Inc", "Lusive", "inc@example.com"),
    );
    o.tax_included = true;
    o.totals.as_mut().unwrap().total = m("59.24");
    stack
        .publish(&event(&o, OrderEventType::Created, "i1"))
        .await;
    let docs = stack
        .wait_docs("SO-6100", T, |d| invoice(d, "SO-6100").is_some())
        .await;
    let inv = invoice(&docs, "SO-6100").unwrap();
    assert_eq!(inv["LineAmountTypes"], "Inclusive");
    assert_eq!(d(&inv["Total"]), dec!(59.24));
    let lines = inv["LineItems"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "no rounding line needed");
    assert_eq!(
        d(&lines[2]["DiscountAmount"]),
        dec!(2.30),
        "the discount, grossed up"
    );
    assert_eq!(d(&lines[2]["TaxAmount"]), dec!(2.70));
}

#[tokio::test]
async fn a_paid_order_that_changes_goes_to_review_and_the_invoice_stays() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-6200", "edit@example.com");
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, "pay-e", total);
    stack.publish(&event(&o, OrderEventType::Paid, "pe1")).await;
    stack
        .wait_docs("paid", T, |d| {
            invoice(d, "SO-6200").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    let mut lines = o.lines.clone();
    lines.push(line(LineKind::Product, "Added later", "1", "9.00", "GST15"));
    let mut edited = order(
        "SO-6200",
        3,
        OrderStatus::Paid,
        lines,
        o.customer.clone().unwrap(),
    );
    edited.payments = o.payments.clone();
    stack
        .publish(&event(&edited, OrderEventType::Updated, "pe2"))
        .await;
    let dl = wait_dead_letter(&stack).await;
    assert_eq!(dl.reason_class, ReasonClass::Policy as i32);
    assert!(dl.error.contains("after its invoice"), "{}", dl.error);
    let docs = stack.sandbox.documents().await;
    assert_eq!(d(&invoice(&docs, "SO-6200").unwrap()["Total"]), total);
}

#[tokio::test]
async fn orders_before_the_go_live_date_are_left_alone() {
    let stack = Stack::start(&["--start-date", "2026-11-22"]).await;
    let mut old = simple("SO-6300", "old@example.com");
    old.created_at = "2026-11-10T10:00:00+13:00".into();
    let mut new = simple("SO-6301", "new@example.com");
    new.created_at = "2026-11-23T10:00:00+13:00".into();
    stack
        .publish(&event(&old, OrderEventType::Created, "g1"))
        .await;
    stack
        .publish(&event(&new, OrderEventType::Created, "g2"))
        .await;
    let docs = stack
        .wait_docs("SO-6301", T, |d| invoice(d, "SO-6301").is_some())
        .await;
    assert!(invoice(&docs, "SO-6300").is_none());
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_paused_tenant_is_not_pulled_until_resumed() {
    let stack = Stack::start(&["--operator-token", "op-secret"]).await;
    let base = stack.writer.as_ref().unwrap().base_url();
    let http = ledgerline_platform::tls::http_client("test").unwrap();
    let tenant = stack.sandbox.tenant.clone();
    let r = http
        .post(format!("{base}/tenants/{tenant}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operator token required");
    let r = http
        .post(format!("{base}/tenants/{tenant}/pause"))
        .bearer_auth("op-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stack
        .publish(&event(
            &simple("SO-6400", "pause@example.com"),
            OrderEventType::Created,
            "ps1",
        ))
        .await;
    stays_absent(&stack, "SO-6400").await;
    let r = http
        .post(format!("{base}/tenants/{tenant}/resume"))
        .bearer_auth("op-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stack
        .wait_docs("resumed", T, |d| invoice(d, "SO-6400").is_some())
        .await;
}

#[tokio::test]
async fn dry_run_computes_and_logs_but_writes_nothing() {
    let stack = Stack::start(&["--dry-run"]).await;
    stack
        .publish(&event(
            &simple("SO-6500", "dry@example.com"),
            OrderEventType::Created,
            "dr1",
        ))
        .await;
    let deadline = tokio::time::Instant::now() + T;
    while !stack
        .output()
        .contains("Dry run: would write this invoice.")
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", stack.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stack.output().contains("SO-6500"));
    assert!(invoices(&stack.sandbox.documents().await).is_empty());
}

#[tokio::test]
async fn a_currency_the_org_lacks_is_converted_with_the_static_rate_or_reviewed() {
    let jpy = |number: &str| {
        let mut o = order(
            number,
            1,
            OrderStatus::Confirmed,
            vec![line(LineKind::Product, "Tea set", "2", "1500", "GST15")],
            customer("Yui", "Sato", &format!("{number}@example.jp")),
        );
        o.currency = "JPY".into();
        o
    };
    let stack = Stack::start(&["--fx-rate", "JPY=0.0113"]).await;
    let o = jpy("SO-6600");
    assert_eq!(total_of(&o), dec!(3450));
    stack
        .publish(&event(&o, OrderEventType::Created, "fx1"))
        .await;
    let docs = stack
        .wait_docs("converted", T, |d| invoice(d, "SO-6600").is_some())
        .await;
    let inv = invoice(&docs, "SO-6600").unwrap();
    assert_eq!(inv["CurrencyCode"], "NZD");
    assert_eq!(d(&inv["Total"]), dec!(38.99), "3,450 JPY at 0.0113");
    let reference = inv["Reference"].as_str().unwrap();
    assert!(reference.contains("JPY 3450.00 @ 0.0113"), "{reference}");

    // Without a rate: review, with the base currency suggested.
    let plain = Stack::start(&[]).await;
    plain
        .publish(&event(&jpy("SO-6601"), OrderEventType::Created, "fx2"))
        .await;
    let dl = wait_dead_letter(&plain).await;
    assert_eq!(dl.reason_class, ReasonClass::Mapping as i32);
    assert!(
        dl.error.contains("not subscribed to currency JPY"),
        "{}",
        dl.error
    );
    assert_eq!(dl.suggestions[0].suggested_value, "NZD");
}

#[tokio::test]
async fn customer_events_update_the_contact_and_create_new_accounts() {
    use ledgerline_contract::v1::{CustomerEvent, CustomerEventType, EventMeta};
    let stack = Stack::start(&[]).await;
    let b2b = |name: &str, key: &str, version: u64| ledgerline_contract::v1::Customer {
        identity_key: key.into(),
        account_id: format!("acct-{key}"),
        account_key: key.into(),
        account_name: name.into(),
        email: format!("{key}@b2b.example").to_ascii_lowercase(),
        first_name: "Pat".into(),
        last_name: "Buyer".into(),
        version,
        active: true,
        ..Default::default()
    };
    let o = order(
        "SO-6700",
        1,
        OrderStatus::Confirmed,
        vec![line(LineKind::Product, "Bulk", "10", "5.00", "GST15")],
        b2b("Acme Ltd", "ACME", 1),
    );
    stack
        .publish(&event(&o, OrderEventType::Created, "c1"))
        .await;
    stack
        .wait_docs("SO-6700", T, |d| invoice(d, "SO-6700").is_some())
        .await;
    let publish = |c: ledgerline_contract::v1::Customer, id: &str| {
        let ev = CustomerEvent {
            meta: Some(EventMeta {
                event_id: id.into(),
                store: "main".into(),
                ..Default::default()
            }),
            r#type: CustomerEventType::Updated as i32,
            customer: Some(c),
        };
        let publisher = stack.publisher.clone();
        let id = id.to_owned();
        async move {
            publisher
                .publish_proto(
                    ledgerline_contract::subjects::customers("main", CustomerEventType::Updated),
                    &id,
                    &ev,
                    Default::default(),
                )
                .await
                .unwrap();
        }
    };
    publish(b2b("Acme Limited", "ACME", 2), "cu1").await;
    publish(b2b("Brand New Co", "NEWCO", 1), "cu2").await;
    let docs = stack
        .wait_docs("renamed and created", T, |d| {
            let names: Vec<&str> = d["Contacts"]
                .as_array()
                .map(|c| c.iter().filter_map(|x| x["Name"].as_str()).collect())
                .unwrap_or_default();
            names.contains(&"Acme Limited") && names.contains(&"Brand New Co")
        })
        .await;
    assert_eq!(docs["Contacts"].as_array().unwrap().len(), 2);
    assert_eq!(
        invoice(&docs, "SO-6700").unwrap()["Contact"]["Name"],
        "Acme Limited",
        "the invoice follows its contact"
    );
}

#[tokio::test]
async fn an_archived_contact_is_not_posted_to_and_goes_to_review_by_policy() {
    let sandbox = Sandbox::start().await;
    // The bookkeeper archived this customer's contact in Xero.
    sandbox
        .api_put(
            "/Contacts",
            serde_json::json!({"Contacts":[{"Name":"Old Customer","ContactNumber":"main:old@example.com","EmailAddress":"old@example.com","ContactStatus":"ARCHIVED"}]}),
        )
        .await;
    let stack = Stack::start_with(sandbox, &["--archived-contact", "review"]).await;
    stack
        .publish(&event(
            &simple("SO-6800", "old@example.com"),
            OrderEventType::Created,
            "ar1",
        ))
        .await;
    let dl = wait_dead_letter(&stack).await;
    assert_eq!(dl.reason_class, ReasonClass::Policy as i32);
    assert!(dl.error.contains("archived"), "{}", dl.error);
    let docs = stack.sandbox.documents().await;
    assert!(invoices(&docs).is_empty());
    assert_eq!(
        docs["Contacts"].as_array().unwrap().len(),
        1,
        "no duplicate contact"
    );
}
