use crate::helpers::*;
use ledgerline_contract::v1::{LineKind, OrderEventType, OrderStatus, ReasonClass};
use rust_decimal_macros::dec;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn order_becomes_contact_invoice_and_paid_payment_to_the_cent() {
    let stack = Stack::start(&[]).await;
    // Three lines whose per-line tax rounding differs from the order's tax on the total.
    let mut o = order(
        "SO-1001",
        1,
        OrderStatus::Confirmed,
        vec![
            line(LineKind::Product, "Pen", "1", "1.05", "GST15"),
            line(LineKind::Product, "Pencil", "1", "1.05", "GST15"),
            line(LineKind::Shipping, "Courier", "1", "1.05", "GST15"),
        ],
        customer("Ana", "Lee", "ana@example.com"),
    );
    assert_eq!(total_of(&o), dec!(3.62));
    o.tracking
        .insert("Sales Channel".into(), "Web Store".into());
    // The org has no such option: left off, not a failure.
    o.tracking.insert("Region".into(), "Mars".into());
    stack
        .publish(&event(&o, OrderEventType::Created, "e1"))
        .await;
    let docs = stack
        .wait_docs("invoice SO-1001", T, |d| invoice(d, "SO-1001").is_some())
        .await;
    let inv = invoice(&docs, "SO-1001").unwrap();
    assert_eq!(inv["Type"], "ACCREC");
    assert_eq!(inv["Status"], "AUTHORISED");
    assert_eq!(inv["LineAmountTypes"], "Exclusive");
    assert_eq!(
        d(&inv["Total"]),
        dec!(3.62),
        "Xero's total equals the order's"
    );
    let lines = inv["LineItems"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "three lines and a rounding line");
    assert_eq!(lines[0]["AccountCode"], "200");
    assert_eq!(lines[0]["TaxType"], "OUTPUT2");
    assert_eq!(
        lines[2]["AccountCode"], "210",
        "shipping to the freight account"
    );
    assert_eq!(lines[3]["AccountCode"], "860");
    assert_eq!(d(&lines[3]["LineAmount"]), dec!(-0.01));
    assert_eq!(lines[0]["Tracking"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["Tracking"][0]["Option"], "Web Store");
    let contacts = docs["Contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["Name"], "Ana Lee");
    assert_eq!(contacts[0]["ContactNumber"], "main:ana@example.com");

    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    pay(&mut o, "pay-1", dec!(3.62));
    stack.publish(&event(&o, OrderEventType::Paid, "e2")).await;
    let docs = stack
        .wait_docs("SO-1001 paid", T, |d| {
            invoice(d, "SO-1001").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    let payments = docs["Payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["Account"]["Code"], "090");
    assert_eq!(d(&payments[0]["Amount"]), dec!(3.62));
    assert!(stack.dead_letters().await.is_empty());
    // Facts went out for the contact, the invoice and the payment.
    let mut xero = stack.js.get_stream("XERO").await.unwrap();
    assert!(xero.info().await.unwrap().state.messages >= 3);
}

#[tokio::test]
async fn duplicates_and_paid_before_created_make_one_invoice_and_one_payment() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1100", "dup@example.com");
    let created = event(&o, OrderEventType::Created, "c1");
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, "pay-9", total);
    let paid = event(&o, OrderEventType::Paid, "p1");
    let paid_again = event(&o, OrderEventType::Paid, "p1-redelivered");
    stack.publish(&paid).await;
    stack.publish(&created).await;
    stack.publish(&paid_again).await;
    stack
        .wait_docs("SO-1100 paid", T, |d| {
            invoice(d, "SO-1100").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    // Publish the old ones again after convergence: nothing changes.
    stack
        .publish(&event(&o, OrderEventType::Paid, "p1-late"))
        .await;
    stack
        .publish(&event(
            &simple("SO-1100", "dup@example.com"),
            OrderEventType::Created,
            "c1-late",
        ))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let docs = stack.sandbox.documents().await;
    assert_eq!(invoices(&docs).len(), 1);
    assert_eq!(docs["Payments"].as_array().unwrap().len(), 1);
    assert_eq!(docs["Contacts"].as_array().unwrap().len(), 1);
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn cancellation_voids_and_an_unpaid_change_updates() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1200", "c@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "a1"))
        .await;
    stack
        .wait_docs("SO-1200", T, |d| invoice(d, "SO-1200").is_some())
        .await;
    // An edit before payment updates the invoice.
    o.version = 2;
    o.lines
        .push(line(LineKind::Product, "Extra", "1", "20.00", "GST15"));
    let mut o2 = order(
        "SO-1200",
        2,
        OrderStatus::Confirmed,
        o.lines.clone(),
        o.customer.clone().unwrap(),
    );
    o2.id = o.id.clone();
    stack
        .publish(&event(&o2, OrderEventType::Updated, "a2"))
        .await;
    let want = total_of(&o2);
    stack
        .wait_docs("SO-1200 updated", T, |d| {
            invoice(d, "SO-1200").is_some_and(|i| d_eq(&i["Total"], want))
        })
        .await;
    o2.version = 3;
    o2.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&o2, OrderEventType::Cancelled, "a3"))
        .await;
    let docs = stack
        .wait_docs("SO-1200 voided", T, |d| {
            invoice(d, "SO-1200").is_some_and(|i| i["Status"] == "VOIDED")
        })
        .await;
    assert_eq!(invoices(&docs).len(), 1);
}

fn d_eq(v: &serde_json::Value, want: rust_decimal::Decimal) -> bool {
    !v.is_null() && d(v) == want
}

#[tokio::test]
async fn refund_of_a_paid_order_is_a_credit_note_paid_back() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1300", "r@example.com");
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, "pay-r", total);
    stack.publish(&event(&o, OrderEventType::Paid, "r1")).await;
    stack
        .wait_docs("SO-1300 paid", T, |d| {
            invoice(d, "SO-1300").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    let rl = vec![line(LineKind::Product, "Widget", "1", "10.00", "GST15")];
    stack
        .publish_refund(&refund_event(&o, "ref-1", "RMA-0001", rl, dec!(11.50)))
        .await;
    let docs = stack
        .wait_docs("credit note", T, |d| {
            d["CreditNotes"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|n| n["CreditNoteNumber"] == "RMA-0001" && n["Status"] == "PAID")
            })
        })
        .await;
    let cn = &docs["CreditNotes"][0];
    assert_eq!(cn["Type"], "ACCRECCREDIT");
    assert_eq!(d(&cn["Total"]), dec!(11.50));
    let refunds: Vec<_> = docs["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["PaymentType"] == "ARCREDITPAYMENT")
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(d(&refunds[0]["Amount"]), dec!(11.50));
}

#[tokio::test]
async fn refund_of_an_unpaid_order_is_allocated_to_the_invoice() {
    let stack = Stack::start(&[]).await;
    let o = simple("SO-1350", "ra@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "ra1"))
        .await;
    stack
        .wait_docs("SO-1350", T, |d| invoice(d, "SO-1350").is_some())
        .await;
    stack
        .publish_refund(&refund_event(&o, "ref-2", "RMA-0002", vec![], dec!(5.75)))
        .await;
    let docs = stack
        .wait_docs("allocated", T, |d| {
            invoice(d, "SO-1350").is_some_and(|i| d_eq(&i["AmountCredited"], dec!(5.75)))
        })
        .await;
    let inv = invoice(&docs, "SO-1350").unwrap();
    assert_eq!(d(&inv["AmountDue"]), total_of(&o) - dec!(5.75));
}

#[tokio::test]
async fn same_name_customers_are_kept_apart() {
    let stack = Stack::start(&[]).await;
    let a = order(
        "SO-1400",
        1,
        OrderStatus::Confirmed,
        vec![line(LineKind::Product, "A", "1", "10.00", "GST15")],
        customer("Jane", "Doe", "jane@one.example"),
    );
    let b = order(
        "SO-1401",
        1,
        OrderStatus::Confirmed,
        vec![line(LineKind::Product, "B", "1", "12.00", "GST15")],
        customer("Jane", "Doe", "jane@two.example"),
    );
    stack
        .publish(&event(&a, OrderEventType::Created, "j1"))
        .await;
    stack
        .publish(&event(&b, OrderEventType::Created, "j2"))
        .await;
    let docs = stack
        .wait_docs("two invoices", T, |d| invoices(d).len() == 2)
        .await;
    let contacts = docs["Contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2);
    let names: Vec<&str> = contacts
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Jane Doe"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("Jane Doe (")),
        "{names:?}"
    );
    let ia = invoice(&docs, "SO-1400").unwrap();
    let ib = invoice(&docs, "SO-1401").unwrap();
    assert_ne!(ia["Contact"]["ContactID"], ib["Contact"]["ContactID"]);
    // A returning customer reuses the contact.
    let c = order(
        "SO-1402",
        1,
        OrderStatus::Confirmed,
        vec![line(LineKind::Product, "C", "1", "3.00", "GST15")],
        customer("Jane", "Doe", "jane@two.example"),
    );
    stack
        .publish(&event(&c, OrderEventType::Created, "j3"))
        .await;
    let docs = stack
        .wait_docs("third", T, |d| invoices(d).len() == 3)
        .await;
    assert_eq!(docs["Contacts"].as_array().unwrap().len(), 2);
    assert_eq!(
        invoice(&docs, "SO-1402").unwrap()["Contact"]["ContactID"],
        ib["Contact"]["ContactID"]
    );
}

#[tokio::test]
async fn an_existing_invoice_number_is_adopted() {
    let sandbox = Sandbox::start().await;
    let made = sandbox
        .api_put(
            "/Invoices",
            serde_json::json!({"Invoices":[{"Type":"ACCREC","Contact":{"Name":"Earlier Integration"},"InvoiceNumber":"SO-1500","Status":"AUTHORISED","LineItems":[{"Description":"x","Quantity":1,"UnitAmount":20,"AccountCode":"200","TaxType":"OUTPUT2"}]}]}),
        )
        .await;
    let first_id = made["Invoices"][0]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_owned();
    let stack = Stack::start_with(sandbox, &[]).await;
    let mut o = simple("SO-1500", "adopt@example.com");
    o.version = 2;
    let total = total_of(&o);
    pay(&mut o, "pay-a", total);
    stack.publish(&event(&o, OrderEventType::Paid, "ad1")).await;
    let docs = stack
        .wait_docs("adopted and paid", T, |d| {
            invoice(d, "SO-1500").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    assert_eq!(invoices(&docs).len(), 1);
    let inv = invoice(&docs, "SO-1500").unwrap();
    assert_eq!(inv["InvoiceID"], first_id.as_str());
    assert_eq!(d(&inv["Total"]), total, "brought in line with the order");
}

#[tokio::test]
async fn an_invalid_account_code_goes_to_review_with_the_right_first_suggestion() {
    let dir = tempfile_dir();
    let path = dir.join("mapping.toml");
    std::fs::write(&path, "[accounts]\nproduct = \"299\"\nshipping = \"210\"\nhandling = \"210\"\nfee = \"260\"\ndiscount = \"200\"\nrounding = \"860\"\n").unwrap();
    let stack = Stack::start(&["--mapping", path.to_str().unwrap()]).await;
    stack
        .publish(&event(
            &simple("SO-1600", "bad@example.com"),
            OrderEventType::Created,
            "b1",
        ))
        .await;
    let ok = {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let dls = stack.dead_letters().await;
            if let Some(dl) = dls.first() {
                break Some(dl.clone());
            }
            if tokio::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let dl = ok.unwrap_or_else(|| panic!("no dead letter; output:\n{}", stack.output()));
    assert_eq!(dl.reason_class, ReasonClass::Mapping as i32);
    assert!(dl.error.contains("299"), "{}", dl.error);
    assert_eq!(dl.suggestions[0].field, "AccountCode");
    assert_eq!(
        dl.suggestions[0].suggested_value, "200",
        "{:?}",
        dl.suggestions
    );
    // Contract v2: the rule that applies the suggestion, the fault, and where the original is.
    assert_eq!(dl.suggestions[0].rule, "[accounts]\nproduct = \"200\"\n");
    let fault = dl.fault.clone().unwrap();
    assert_eq!(
        (
            fault.code.as_str(),
            fault.field.as_str(),
            fault.value.as_str()
        ),
        ("inactive_account", "AccountCode", "299")
    );
    assert_eq!(dl.original_stream, "ORDERS");
    assert!(dl.original_sequence > 0);
    assert!(!dl.tenant.is_empty());
    assert!(invoices(&stack.sandbox.documents().await).is_empty());
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xw-test-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    format!(
        "{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
