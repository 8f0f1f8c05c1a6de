//! Document policies: draft status, due dates from payment terms, archived contacts, payments
//! removed before a void.

use crate::helpers::*;
use chrono::NaiveDate;
use ledgerline_contract::v1::{
    OrderEventType, OrderStatus, ReasonClass, XeroDocumentKind, XeroVerb,
};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn wait_fact(
    stack: &Stack,
    kind: XeroDocumentKind,
    verb: XeroVerb,
) -> ledgerline_contract::v1::XeroFact {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        if let Some(f) = stack
            .facts()
            .await
            .into_iter()
            .find(|f| f.kind() == kind && f.verb() == verb)
        {
            return f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind:?} {verb:?} fact:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Xero date (`/Date(ms+0000)/`) as a calendar day.
fn day(v: &Value) -> NaiveDate {
    let s = v.as_str().expect("a date");
    let ms: i64 = s
        .trim_start_matches("/Date(")
        .split(['+', ')'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .date_naive()
}

fn ymd(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn draft_invoices_hold_payments_for_approval_and_cancelled_drafts_are_deleted() {
    let stack = Stack::start(&["--invoice-status", "draft"]).await;
    let mut o = simple("SO-7000", "draft@example.com");
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, "pay-d", total);
    let paid = event(&o, OrderEventType::Paid, "d1");
    stack.publish(&paid).await;
    let dl = stack.wait_dead_letters(1, T).await.remove(0);
    assert_eq!(dl.reason_class, ReasonClass::Policy as i32);
    assert!(
        dl.error.contains("payment pay-d waits for approval")
            && dl.error.contains("DRAFT")
            && dl.error.contains("replay"),
        "{}",
        dl.error
    );
    let docs = stack.sandbox.documents().await;
    let inv = invoice(&docs, "SO-7000").expect("the draft is written");
    assert_eq!(inv["Status"], "DRAFT");
    assert_eq!(d(&inv["AmountPaid"]), rust_decimal::Decimal::ZERO);
    assert!(docs["Payments"].as_array().is_none_or(|p| p.is_empty()));
    let f = wait_fact(&stack, XeroDocumentKind::Invoice, XeroVerb::Created).await;
    assert_eq!(f.status, "DRAFT", "the fact says what Xero holds");

    // A person approves the draft in Xero, then the dead letter is replayed: the payment lands.
    let id = inv["InvoiceID"].as_str().unwrap().to_owned();
    let r = stack
        .sandbox
        .api(
            reqwest::Method::POST,
            &format!("/Invoices/{id}"),
            Some(json!({"Invoices": [{"InvoiceID": id, "Status": "AUTHORISED"}]})),
        )
        .await;
    assert_eq!(r["Invoices"][0]["Status"], "AUTHORISED", "{r}");
    stack
        .publish(&event(&o, OrderEventType::Paid, "d1-replay"))
        .await;
    stack
        .wait_docs("SO-7000 paid after approval", T, |d| {
            invoice(d, "SO-7000").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    wait_fact(&stack, XeroDocumentKind::Payment, XeroVerb::Recorded).await;

    // Xero cannot void a draft: a cancelled order's draft is deleted.
    let mut c = simple("SO-7001", "cancel-draft@example.com");
    stack
        .publish(&event(&c, OrderEventType::Created, "d2"))
        .await;
    stack
        .wait_docs("SO-7001 draft", T, |d| {
            invoice(d, "SO-7001").is_some_and(|i| i["Status"] == "DRAFT")
        })
        .await;
    c.version = 2;
    c.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&c, OrderEventType::Cancelled, "d3"))
        .await;
    stack
        .wait_docs("SO-7001 deleted", T, |d| {
            invoice(d, "SO-7001").is_some_and(|i| i["Status"] == "DELETED")
        })
        .await;
    let f = wait_fact(&stack, XeroDocumentKind::Invoice, XeroVerb::Deleted).await;
    assert_eq!(f.number, "SO-7001");
    assert_eq!(stack.dead_letters().await.len(), 1, "only the held payment");
}

#[tokio::test]
async fn due_dates_follow_the_order_then_the_contact_terms_then_the_org_terms() {
    let sandbox = Sandbox::start().await;
    sandbox
        .api_put(
            "/Contacts",
            json!({"Contacts": [{"Name": "Terms Buyer", "ContactNumber": "main:terms@example.com",
                "EmailAddress": "terms@example.com",
                "PaymentTerms": {"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}}}]}),
        )
        .await;
    sandbox
        .admin_post(
            &format!("/tenants/{}/payment-terms", sandbox.tenant),
            json!({"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}}),
        )
        .await;
    let stack = Stack::start_with(sandbox, &["--default-due-days", "3"]).await;
    // Orders dated 2026-11-20 (NZ time).
    let by_contact = simple("SO-7100", "terms@example.com");
    let by_org = simple("SO-7101", "no-terms@example.com");
    let mut own = simple("SO-7102", "own@example.com");
    own.due_date = "2026-11-25".into();
    for (o, id) in [(&by_contact, "t1"), (&by_org, "t2"), (&own, "t3")] {
        stack.publish(&event(o, OrderEventType::Created, id)).await;
    }
    let docs = stack
        .wait_docs("three invoices", T, |d| invoices(d).len() == 3)
        .await;
    let due = |n: &str| day(&invoice(&docs, n).unwrap()["DueDate"]);
    assert_eq!(
        day(&invoice(&docs, "SO-7100").unwrap()["Date"]),
        ymd("2026-11-20")
    );
    assert_eq!(
        due("SO-7100"),
        ymd("2026-12-20"),
        "20th of the following month"
    );
    assert_eq!(due("SO-7101"), ymd("2026-12-04"), "org: 14 days after");
    assert_eq!(
        due("SO-7102"),
        ymd("2026-11-25"),
        "the order's own due date"
    );
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_archived_contact_is_made_active_again_and_invoiced() {
    let sandbox = Sandbox::start().await;
    sandbox
        .api_put(
            "/Contacts",
            json!({"Contacts":[{"Name":"Returning Customer","ContactNumber":"main:back@example.com","EmailAddress":"back@example.com","ContactStatus":"ARCHIVED"}]}),
        )
        .await;
    let stack = Stack::start_with(sandbox, &[]).await;
    stack
        .publish(&event(
            &simple("SO-7200", "back@example.com"),
            OrderEventType::Created,
            "ar1",
        ))
        .await;
    let docs = stack
        .wait_docs("SO-7200", T, |d| invoice(d, "SO-7200").is_some())
        .await;
    let contacts = docs["Contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "no duplicate contact");
    assert_eq!(contacts[0]["ContactStatus"], "ACTIVE");
    assert_eq!(
        invoice(&docs, "SO-7200").unwrap()["Contact"]["ContactID"],
        contacts[0]["ContactID"]
    );
    let f = wait_fact(&stack, XeroDocumentKind::Contact, XeroVerb::Updated).await;
    assert_eq!(f.status, "ACTIVE");
    assert_eq!(f.xero_id, contacts[0]["ContactID"].as_str().unwrap());
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_cancelled_paid_order_has_its_payments_deleted_then_is_voided() {
    let stack = Stack::start(&["--void-removes-payments"]).await;
    let mut o = simple("SO-7300", "refundme@example.com");
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, "pay-v", total);
    stack.publish(&event(&o, OrderEventType::Paid, "v1")).await;
    stack
        .wait_docs("SO-7300 paid", T, |d| {
            invoice(d, "SO-7300").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    o.version = 3;
    o.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&o, OrderEventType::Cancelled, "v2"))
        .await;
    let docs = stack
        .wait_docs("SO-7300 voided", T, |d| {
            invoice(d, "SO-7300").is_some_and(|i| i["Status"] == "VOIDED")
        })
        .await;
    let payments = docs["Payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["Status"], "DELETED");
    let deleted = wait_fact(&stack, XeroDocumentKind::Payment, XeroVerb::Deleted).await;
    assert_eq!(deleted.xero_id, payments[0]["PaymentID"].as_str().unwrap());
    assert_eq!(deleted.total.unwrap().amount, total.to_string());
    wait_fact(&stack, XeroDocumentKind::Invoice, XeroVerb::Voided).await;
    let led = stack.ledger(&o.id).await.expect("ledger entry");
    assert_eq!(led["voided"], true);
    assert!(led["payments"].as_object().unwrap().is_empty());
    assert_eq!(
        led["removed_payments"]["pay-v"]["payment_id"],
        payments[0]["PaymentID"]
    );
    assert!(stack.dead_letters().await.is_empty());
}

/// Locks the period up to `date` and waits until the writer has read its settings since.
async fn lock_period(stack: &Stack, date: &str) {
    let reads = |log: &[Value]| {
        log.iter()
            .filter(|r| r["method"] == "GET" && r["endpoint"] == "/currencies")
            .count()
    };
    let before = reads(&stack.sandbox.requests().await);
    stack
        .sandbox
        .admin_post(
            &format!("/tenants/{}/period-lock", stack.sandbox.tenant),
            json!({ "date": date }),
        )
        .await;
    // The settings are read in order, /Currencies last, before the next pull.
    let deadline = tokio::time::Instant::now() + T;
    while reads(&stack.sandbox.requests().await) < before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "{}", stack.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SO-7500 as first written (dated 2026-11-20), and the same order with one more line.
fn locked_order(
    number: &str,
) -> (
    ledgerline_contract::v1::Order,
    ledgerline_contract::v1::Order,
) {
    use ledgerline_contract::v1::LineKind;
    let o = simple(number, &format!("{number}@example.com"));
    let mut lines = o.lines.clone();
    lines.push(line(LineKind::Product, "Added later", "1", "9.00", "GST15"));
    let mut changed = order(
        number,
        2,
        OrderStatus::Confirmed,
        lines,
        o.customer.clone().unwrap(),
    );
    changed.id = o.id.clone();
    (o, changed)
}

#[tokio::test]
async fn a_change_in_a_locked_period_goes_to_review_without_a_xero_call() {
    let stack = Stack::start(&["--settings-refresh", "200ms"]).await;
    let (o, changed) = locked_order("SO-7400");
    stack
        .publish(&event(&o, OrderEventType::Created, "l1"))
        .await;
    stack
        .wait_docs("SO-7400", T, |d| invoice(d, "SO-7400").is_some())
        .await;
    lock_period(&stack, "2026-11-25").await;
    stack
        .publish(&event(&changed, OrderEventType::Updated, "l2"))
        .await;
    let dl = stack.wait_dead_letters(1, T).await.remove(0);
    assert_eq!(dl.reason_class, ReasonClass::Policy as i32);
    assert!(
        dl.error.contains("lock date 2026-11-25") && dl.error.contains("SO-7400"),
        "{}",
        dl.error
    );
    let docs = stack.sandbox.documents().await;
    assert_eq!(
        d(&invoice(&docs, "SO-7400").unwrap()["Total"]),
        total_of(&o)
    );
    let posts = stack
        .sandbox
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "POST" && r["endpoint"] == "/invoices")
        .count();
    assert_eq!(posts, 0, "decided from the cached settings");
    // Nor is it voided there.
    let mut cancelled = changed.clone();
    cancelled.version = 3;
    cancelled.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&cancelled, OrderEventType::Cancelled, "l3"))
        .await;
    let dls = stack.wait_dead_letters(2, T).await;
    assert!(
        dls[1].error.contains("cancelled") && dls[1].error.contains("cannot void"),
        "{}",
        dls[1].error
    );
    let docs = stack.sandbox.documents().await;
    assert_eq!(invoice(&docs, "SO-7400").unwrap()["Status"], "AUTHORISED");
}

#[tokio::test]
async fn a_cancelled_order_in_a_locked_period_is_credited_instead_of_voided() {
    let stack = Stack::start(&[
        "--settings-refresh",
        "200ms",
        "--locked-period",
        "credit-and-reissue",
    ])
    .await;
    let mut o = simple("SO-7700", "locked-cancel@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "lc1"))
        .await;
    stack
        .wait_docs("SO-7700", T, |d| invoice(d, "SO-7700").is_some())
        .await;
    lock_period(&stack, "2026-11-25").await;
    o.version = 2;
    o.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&o, OrderEventType::Cancelled, "lc2"))
        .await;
    let docs = stack
        .wait_docs("SO-7700 credited", T, |d| {
            invoice(d, "SO-7700").is_some_and(|i| d_is_zero(&i["AmountDue"]))
        })
        .await;
    let inv = invoice(&docs, "SO-7700").unwrap();
    assert_ne!(inv["Status"], "VOIDED");
    assert_eq!(d(&inv["AmountCredited"]), total_of(&o));
    let cn = &docs["CreditNotes"].as_array().unwrap()[0];
    assert_eq!(cn["CreditNoteNumber"], "SO-7700-C");
    assert!(day(&cn["Date"]) > ymd("2026-11-25"));
    let led = stack.ledger(&o.id).await.unwrap();
    assert_eq!(led["voided"], true);
    assert_eq!(led["credit_notes"]["cancelled"]["number"], "SO-7700-C");
    wait_fact(&stack, XeroDocumentKind::Allocation, XeroVerb::Created).await;
    assert!(stack.dead_letters().await.is_empty());
}

fn d_is_zero(v: &Value) -> bool {
    !v.is_null() && d(v).is_zero()
}

#[tokio::test]
async fn a_change_in_a_locked_period_can_be_credited_and_reissued() {
    let stack = Stack::start(&[
        "--settings-refresh",
        "200ms",
        "--locked-period",
        "credit-and-reissue",
    ])
    .await;
    let (o, changed) = locked_order("SO-7500");
    stack
        .publish(&event(&o, OrderEventType::Created, "r1"))
        .await;
    stack
        .wait_docs("SO-7500", T, |d| invoice(d, "SO-7500").is_some())
        .await;
    lock_period(&stack, "2026-11-25").await;
    stack
        .publish(&event(&changed, OrderEventType::Updated, "r2"))
        .await;
    let docs = stack
        .wait_docs("SO-7500-R1", T, |d| invoice(d, "SO-7500-R1").is_some())
        .await;
    let old = invoice(&docs, "SO-7500").unwrap();
    let new = invoice(&docs, "SO-7500-R1").unwrap();
    assert_eq!(
        d(&old["Total"]),
        total_of(&o),
        "the old invoice is untouched"
    );
    assert_eq!(
        d(&old["AmountDue"]),
        rust_decimal::Decimal::ZERO,
        "and fully credited"
    );
    assert_eq!(d(&old["AmountCredited"]), total_of(&o));
    assert_eq!(d(&new["Total"]), total_of(&changed));
    assert!(
        day(&new["Date"]) > ymd("2026-11-25"),
        "dated after the lock"
    );
    let cn = docs["CreditNotes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CreditNoteNumber"] == "SO-7500-C")
        .expect("credit note");
    assert_eq!(d(&cn["Total"]), total_of(&o));
    assert!(day(&cn["Date"]) > ymd("2026-11-25"));
    let led = stack.ledger(&o.id).await.unwrap();
    assert_eq!(led["invoice_number"], "SO-7500-R1");
    assert_eq!(led["superseded"][0]["invoice_number"], "SO-7500");
    assert_eq!(led["superseded"][0]["credit_note_number"], "SO-7500-C");
    wait_fact(&stack, XeroDocumentKind::CreditNote, XeroVerb::Created).await;
    wait_fact(&stack, XeroDocumentKind::Allocation, XeroVerb::Created).await;
    assert!(
        stack
            .facts()
            .await
            .iter()
            .any(|f| f.kind() == XeroDocumentKind::Invoice && f.number == "SO-7500-R1")
    );
    assert!(stack.dead_letters().await.is_empty());
    // Payments now go to the new invoice.
    let mut paid = changed.clone();
    paid.version = 3;
    paid.status = OrderStatus::Paid as i32;
    let total = total_of(&paid);
    pay(&mut paid, "pay-r", total);
    stack
        .publish(&event(&paid, OrderEventType::Paid, "r3"))
        .await;
    let docs = stack
        .wait_docs("SO-7500-R1 paid", T, |d| {
            invoice(d, "SO-7500-R1").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    let p = docs["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Invoice"]["InvoiceNumber"] == "SO-7500-R1")
        .expect("payment");
    assert_eq!(
        day(&p["Date"]),
        ymd("2026-11-26"),
        "received in the locked period: the first open day"
    );
}

#[tokio::test]
async fn a_refund_of_a_draft_invoice_is_a_draft_credit_note_held_for_approval() {
    let stack = Stack::start(&["--invoice-status", "draft"]).await;
    let o = simple("SO-7600", "draft-refund@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "dr1"))
        .await;
    stack
        .wait_docs("SO-7600 draft", T, |d| invoice(d, "SO-7600").is_some())
        .await;
    let refund = refund_event(
        &o,
        "rf-1",
        "RMA-1",
        vec![],
        rust_decimal_macros::dec!(11.50),
    );
    stack.publish_refund(&refund).await;
    let dl = stack.wait_dead_letters(1, T).await.remove(0);
    assert_eq!(dl.reason_class, ReasonClass::Policy as i32);
    assert!(
        dl.error.contains("waits for approval") && dl.error.contains("DRAFT"),
        "{}",
        dl.error
    );
    let docs = stack.sandbox.documents().await;
    let cns = docs["CreditNotes"].as_array().unwrap();
    assert_eq!(cns.len(), 1);
    assert_eq!(cns[0]["Status"], "DRAFT");
    assert!(
        cns[0]["Allocations"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
}

#[tokio::test]
async fn a_refund_for_a_contact_archived_since_restores_it_and_credits() {
    let stack = Stack::start(&[]).await;
    let o = simple("SO-7800", "archived-later@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "ac1"))
        .await;
    let docs = stack
        .wait_docs("SO-7800", T, |d| invoice(d, "SO-7800").is_some())
        .await;
    let contact = invoice(&docs, "SO-7800").unwrap()["Contact"]["ContactID"]
        .as_str()
        .unwrap()
        .to_owned();
    // The bookkeeper archives the contact after the sale.
    let r = stack
        .sandbox
        .api(
            reqwest::Method::POST,
            "/Contacts",
            Some(json!({"Contacts": [{"ContactID": contact, "ContactStatus": "ARCHIVED"}]})),
        )
        .await;
    assert_eq!(r["Contacts"][0]["ContactStatus"], "ARCHIVED", "{r}");
    let refund = refund_event(
        &o,
        "rf-a",
        "RMA-A",
        vec![],
        rust_decimal_macros::dec!(11.50),
    );
    stack.publish_refund(&refund).await;
    let docs = stack
        .wait_docs("credited", T, |d| {
            invoice(d, "SO-7800")
                .is_some_and(|i| !i["AmountCredited"].is_null() && !d_is_zero(&i["AmountCredited"]))
        })
        .await;
    assert_eq!(docs["CreditNotes"].as_array().unwrap().len(), 1);
    assert_eq!(docs["Contacts"][0]["ContactStatus"], "ACTIVE");
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn mapped_custom_fields_fill_the_contact_and_its_terms_set_the_due_date() {
    let dir = std::env::temp_dir().join(format!(
        "xw-fields-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mapping.toml");
    std::fs::write(
        &path,
        "[[fields]]\nattribute = \"XeroAccountNumber\"\ntarget = \"contact.account_number\"\n\
         [[fields]]\nattribute = \"TaxId\"\ntarget = \"contact.tax_number\"\n\
         [[fields]]\nattribute = \"TermsDays\"\ntarget = \"contact.payment_terms_days\"\n",
    )
    .unwrap();
    let stack = Stack::start(&["--mapping", path.to_str().unwrap()]).await;
    let mut mapped = simple("SO-7300", "fields@example.com");
    let c = mapped.customer.as_mut().unwrap();
    c.attributes
        .insert("XeroAccountNumber".into(), "ACC-42".into());
    c.attributes.insert("TaxId".into(), "123-456-789".into());
    // The account's value wins over the order's; the order fills what the account lacks.
    mapped
        .attributes
        .insert("TaxId".into(), "from-the-order".into());
    mapped.attributes.insert("TermsDays".into(), "21".into());
    let mut bad_terms = simple("SO-7301", "badterms@example.com");
    bad_terms
        .attributes
        .insert("TermsDays".into(), "soon".into());
    for (o, id) in [(&mapped, "f1"), (&bad_terms, "f2")] {
        stack.publish(&event(o, OrderEventType::Created, id)).await;
    }
    let docs = stack
        .wait_docs("two invoices", T, |d| invoices(d).len() == 2)
        .await;
    let contact = |email: &str| -> Value {
        docs["Contacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["EmailAddress"] == email)
            .cloned()
            .unwrap_or_else(|| panic!("no contact {email}"))
    };
    let c = contact("fields@example.com");
    assert_eq!(c["AccountNumber"], "ACC-42");
    assert_eq!(c["TaxNumber"], "123-456-789");
    assert_eq!(c["PaymentTerms"]["Sales"]["Day"], 21);
    assert_eq!(c["PaymentTerms"]["Sales"]["Type"], "DAYSAFTERBILLDATE");
    let bad = contact("badterms@example.com");
    assert!(bad.get("PaymentTerms").is_none_or(Value::is_null), "{bad}");
    let due = |n: &str| day(&invoice(&docs, n).unwrap()["DueDate"]);
    assert_eq!(
        due("SO-7300"),
        ymd("2026-12-11"),
        "21 days after 2026-11-20"
    );
    assert_eq!(due("SO-7301"), ymd("2026-11-20"), "no terms: the default");
    assert!(stack.dead_letters().await.is_empty());
}
