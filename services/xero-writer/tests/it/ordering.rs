//! Refunds and the payments they follow, whatever order they arrive in (issue 10): a refund is
//! held until the order version it was made against is written, a stale allocation is undone
//! so the payment lands in full, and a payment that cannot be recorded goes to review.

use crate::helpers::*;
use ledgerline_contract::v1::{LineKind, OrderEventType, OrderStatus, ReasonClass};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Sum of a counter over all its label sets in a Prometheus text page.
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

impl Stack {
    /// Waits (bounded) until the writer's counter `name` reaches `n`.
    pub async fn wait_counter(&self, name: &str, n: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let page = self.metrics().await;
            if counter(&page, name) >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never reached {n}:\n{page}\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn cash_refunds(docs: &Value) -> Vec<Value> {
    docs["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["PaymentType"] == "ARCREDITPAYMENT" && p["Status"] != "DELETED")
        .cloned()
        .collect()
}

/// The issue's end state: the payment on the invoice, the credit note paid back as cash.
async fn assert_paid_and_refunded(stack: &Stack, number: &str, rma: &str, total: Decimal) {
    let docs = stack
        .wait_docs("payment on the invoice, refund paid out", T, |docs| {
            let inv_ok = invoice(docs, number).is_some_and(|i| {
                i["Status"] == "PAID"
                    && d(&i["AmountPaid"]) == total
                    && d(&i["AmountCredited"]).is_zero()
            });
            let cn_ok = docs["CreditNotes"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|n| n["CreditNoteNumber"] == rma && d(&n["RemainingCredit"]).is_zero())
            });
            inv_ok && cn_ok
        })
        .await;
    let refunds = cash_refunds(&docs);
    assert_eq!(refunds.len(), 1, "one refund payment: {refunds:?}");
    assert_eq!(d(&refunds[0]["Amount"]), total);
    let paid: Vec<&Value> = docs["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["PaymentType"] == "ACCRECPAYMENT" && p["Status"] != "DELETED")
        .collect();
    assert_eq!(paid.len(), 1, "one customer payment: {paid:?}");
    assert_eq!(d(&paid[0]["Amount"]), total);
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_refund_delivered_before_its_payment_waits_for_it() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1821", "late-pay@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "c1"))
        .await;
    stack
        .wait_docs("SO-1821", T, |d| invoice(d, "SO-1821").is_some())
        .await;
    let total = total_of(&o);
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    pay(&mut o, "pay-11689", total);
    let paid = event(&o, OrderEventType::Paid, "p1");
    // Returned in full after the payment: the store made the refund against version 2.
    let refund = refund_event(&o, "ref-4770", "RMA-004770", vec![], total);
    // The refund overtakes the payment (a crash, a redelivery).
    stack.publish_refund(&refund).await;
    stack
        .wait_counter("xero_writer_refunds_held_total", 1, T)
        .await;
    let docs = stack.sandbox.documents().await;
    assert!(
        docs["CreditNotes"].as_array().is_none_or(|c| c.is_empty()),
        "nothing credited on a stale view"
    );
    stack.publish(&paid).await;
    assert_paid_and_refunded(&stack, "SO-1821", "RMA-004770", total).await;
    let page = stack.metrics().await;
    assert_eq!(counter(&page, "xero_writer_unapplied_total"), 0);
}

#[tokio::test]
async fn a_credit_allocated_on_a_stale_view_is_undone_so_the_payment_lands() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1822", "stale@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "c1"))
        .await;
    stack
        .wait_docs("SO-1822", T, |d| invoice(d, "SO-1822").is_some())
        .await;
    let total = total_of(&o);
    // A refund event that does not say which order version it followed (as written before
    // the hold rule): allocated to the unpaid invoice, as a refund of an unpaid order is.
    let mut refund = refund_event(&o, "ref-9", "RMA-0009", vec![], total);
    refund.order_version = 0;
    stack.publish_refund(&refund).await;
    stack
        .wait_docs("allocated", T, |docs| {
            invoice(docs, "SO-1822").is_some_and(|i| d(&i["AmountCredited"]) == total)
        })
        .await;
    // Then the payment the store had taken before the refund arrives.
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    pay(&mut o, "pay-9", total);
    stack.publish(&event(&o, OrderEventType::Paid, "p1")).await;
    assert_paid_and_refunded(&stack, "SO-1822", "RMA-0009", total).await;
    let page = stack.metrics().await;
    assert_eq!(counter(&page, "xero_writer_allocations_undone_total"), 1);
    let facts = stack.facts().await;
    assert!(
        facts.iter().any(|f| f.kind
            == ledgerline_contract::v1::XeroDocumentKind::Allocation as i32
            && f.verb == ledgerline_contract::v1::XeroVerb::Deleted as i32),
        "the undone allocation is announced"
    );
}

#[tokio::test]
async fn a_payment_larger_than_what_is_due_goes_to_review_not_away() {
    let stack = Stack::start(&[]).await;
    let mut o = order(
        "SO-1823",
        1,
        OrderStatus::Confirmed,
        vec![line(LineKind::Product, "Lamp", "1", "40.00", "GST15")],
        customer("Max", "Over", "over@example.com"),
    );
    stack
        .publish(&event(&o, OrderEventType::Created, "c1"))
        .await;
    stack
        .wait_docs("SO-1823", T, |d| invoice(d, "SO-1823").is_some())
        .await;
    o.version = 2;
    pay(&mut o, "pay-a", dec!(30.00));
    pay(&mut o, "pay-b", dec!(30.00));
    stack.publish(&event(&o, OrderEventType::Paid, "p1")).await;
    let dls = stack.wait_dead_letters(1, T).await;
    assert_eq!(dls[0].reason_class, ReasonClass::Policy as i32);
    assert!(
        dls[0].error.contains("pay-b") && dls[0].error.contains("owes 16.00"),
        "{}",
        dls[0].error
    );
    stack
        .wait_counter("xero_writer_unapplied_total", 1, T)
        .await;
    let docs = stack.sandbox.documents().await;
    let paid: Vec<&Value> = docs["Payments"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    assert!(paid.is_empty(), "no partial write of the order: {paid:?}");
}

#[tokio::test]
async fn a_refund_of_an_order_version_in_review_goes_to_review_with_it() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1824", "rev@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "c1"))
        .await;
    stack
        .wait_docs("SO-1824", T, |d| invoice(d, "SO-1824").is_some())
        .await;
    // Version 2 goes to review (its payment is more than the invoice's total).
    o.version = 2;
    let total = total_of(&o);
    pay(&mut o, "pay-r", total + dec!(10));
    stack.publish(&event(&o, OrderEventType::Paid, "p1")).await;
    let first = stack.wait_dead_letters(1, T).await;
    let refund = refund_event(&o, "ref-r", "RMA-0024", vec![], total);
    stack.publish_refund(&refund).await;
    let dls = stack.wait_dead_letters(2, T).await;
    let second = dls
        .iter()
        .find(|dl| dl.error.contains("ref-r"))
        .unwrap_or_else(|| panic!("a review entry for the refund: {dls:?} (first {first:?})"));
    assert!(second.error.contains("in review"), "{}", second.error);
    let docs = stack.sandbox.documents().await;
    assert!(docs["CreditNotes"].as_array().is_none_or(|c| c.is_empty()));
}

/// A crash after Xero applied an invoice but before the ledger knew it, then the cancellation
/// processed first: the invoice is found by number and voided, not left AUTHORISED.
#[tokio::test]
async fn a_cancelled_orders_invoice_from_a_lost_attempt_is_found_and_voided() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-1830", "lost@example.com");
    // What the lost attempt left in Xero.
    let made = stack
        .sandbox
        .api_put(
            "/Invoices",
            serde_json::json!({"Invoices": [{
                "Type": "ACCREC", "InvoiceNumber": "SO-1830", "Status": "AUTHORISED",
                "Contact": {"Name": "Pat Buyer SO-1830"}, "Date": "2026-11-20", "DueDate": "2026-12-20",
                "LineItems": [{"Description": "Widget", "Quantity": 1, "UnitAmount": 25, "AccountCode": "200", "TaxType": "OUTPUT2"}]
            }]}),
        )
        .await;
    assert_eq!(made["Invoices"][0]["Status"], "AUTHORISED", "{made}");
    o.version = 2;
    o.status = OrderStatus::Cancelled as i32;
    stack
        .publish(&event(&o, OrderEventType::Cancelled, "x1"))
        .await;
    let docs = stack
        .wait_docs("the unconfirmed invoice voided", T, |docs| {
            invoice(docs, "SO-1830").is_some_and(|i| i["Status"] == "VOIDED")
        })
        .await;
    assert_eq!(invoices(&docs).len(), 1);
    assert!(stack.dead_letters().await.is_empty());
}
