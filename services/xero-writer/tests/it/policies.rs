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

async fn wait_dead_letters(stack: &Stack, n: usize) -> Vec<ledgerline_contract::v1::DeadLetter> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let dls = stack.dead_letters().await;
        if dls.len() >= n {
            return dls;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters, want {n}:\n{}",
            dls.len(),
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    let dl = wait_dead_letters(&stack, 1).await.remove(0);
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
