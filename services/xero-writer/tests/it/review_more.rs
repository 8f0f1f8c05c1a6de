//! Issue 6 gaps: an unknown tracking option goes to review with the closest options (by
//! setting), and an allocation whose answer was lost is looked up in Xero, not made twice.

use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, ReasonClass, XeroDocumentKind, XeroVerb};
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn calls(log: &[Value], method: &str, endpoint: &str) -> usize {
    log.iter()
        .filter(|r| r["method"] == method && r["endpoint"] == endpoint)
        .count()
}

#[tokio::test]
async fn an_unknown_tracking_option_goes_to_review_with_the_closest_option() {
    let stack = Stack::start(&["--unknown-tracking", "review"]).await;
    let mut bad = simple("SO-8100", "nowhere@example.com");
    bad.tracking.insert("Region".into(), "Northland".into());
    let mut good = simple("SO-8101", "north@example.com");
    good.tracking.insert("Region".into(), "north island".into());
    stack
        .publish(&event(&bad, OrderEventType::Created, "tr1"))
        .await;
    stack
        .publish(&event(&good, OrderEventType::Created, "tr2"))
        .await;
    let docs = stack
        .wait_docs("SO-8101", T, |d| invoice(d, "SO-8101").is_some())
        .await;
    let inv = invoice(&docs, "SO-8101").unwrap();
    assert_eq!(
        inv["LineItems"][0]["Tracking"][0]["Option"], "North Island",
        "a known option, spelled as the org spells it"
    );
    let dls = stack.wait_dead_letters(1, T).await;
    assert_eq!(dls.len(), 1, "only the unknown option is held");
    let dl = &dls[0];
    assert_eq!(dl.reason_class, ReasonClass::Mapping as i32);
    assert!(
        dl.error.contains("Northland") && dl.error.contains("Region"),
        "{}",
        dl.error
    );
    let first = &dl.suggestions[0];
    assert_eq!(first.field, "Tracking.Region");
    assert_eq!(first.current_value, "Northland");
    assert_eq!(first.suggested_value, "North Island");
    assert!(!first.reason.is_empty());
    let fault = dl.fault.clone().unwrap();
    assert_eq!(
        (
            fault.code.as_str(),
            fault.field.as_str(),
            fault.value.as_str()
        ),
        ("unknown_tracking", "Tracking.Region", "Northland")
    );
    assert!(
        dl.suggestions.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );
    // Nothing written for it, and no invoice call spent on it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let docs = stack.sandbox.documents().await;
    assert!(invoice(&docs, "SO-8100").is_none());
    let log = stack.sandbox.requests().await;
    let writes = calls(&log, "PUT", "/invoices") + calls(&log, "POST", "/invoices");
    assert_eq!(writes, 1, "one invoice call, for SO-8101 only");
    let facts = stack.facts().await;
    assert!(
        facts
            .iter()
            .all(|f| !(f.kind() == XeroDocumentKind::Invoice && f.number == "SO-8100"))
    );

    // The suggestion's rule, as the review queue applies it (a mapping-overlay key), then a
    // replay: the store's value stays "Northland", Xero gets the organisation's option.
    assert_eq!(
        first.rule,
        "[tracking_options.\"Region\"]\n\"Northland\" = \"North Island\"\n"
    );
    let overlay = stack
        .js
        .get_key_value(ledgerline_contract::buckets::MAPPING_OVERLAY.bucket)
        .await
        .unwrap();
    let revision = overlay
        .put("review.tracking", first.rule.clone().into())
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        ledgerline_contract::headers::OVERLAY_REVISION,
        revision.to_string().as_str(),
    );
    let replay = event(&bad, OrderEventType::Created, "tr1.replay.1");
    stack
        .publisher
        .publish_proto(
            ledgerline_contract::subjects::orders(
                "main",
                OrderEventType::Created,
                &bad.id,
                &bad.number,
            ),
            "tr1.replay.1",
            &replay,
            headers,
        )
        .await
        .unwrap();
    let docs = stack
        .wait_docs("SO-8100", T, |d| invoice(d, "SO-8100").is_some())
        .await;
    assert_eq!(
        invoice(&docs, "SO-8100").unwrap()["LineItems"][0]["Tracking"][0]["Option"],
        "North Island"
    );
}

#[tokio::test]
async fn an_unknown_tracking_category_suggests_the_orgs_categories() {
    let stack = Stack::start(&["--unknown-tracking", "review"]).await;
    let mut bad = simple("SO-8110", "regoin@example.com");
    bad.tracking.insert("Regoin".into(), "Export".into());
    stack
        .publish(&event(&bad, OrderEventType::Created, "tc1"))
        .await;
    let dl = stack.wait_dead_letters(1, T).await.remove(0);
    assert_eq!(dl.reason_class, ReasonClass::Mapping as i32);
    assert!(dl.error.contains("Regoin"), "{}", dl.error);
    assert_eq!(dl.suggestions[0].field, "Tracking");
    assert_eq!(dl.suggestions[0].suggested_value, "Region");
    assert!(invoice(&stack.sandbox.documents().await, "SO-8110").is_none());
}

#[tokio::test]
async fn an_unknown_tracking_option_is_left_off_by_default() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-8120", "omit@example.com");
    o.tracking.insert("Region".into(), "Nowhere".into());
    stack
        .publish(&event(&o, OrderEventType::Created, "to1"))
        .await;
    let docs = stack
        .wait_docs("SO-8120", T, |d| invoice(d, "SO-8120").is_some())
        .await;
    let inv = invoice(&docs, "SO-8120").unwrap();
    assert!(
        inv["LineItems"][0]["Tracking"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{inv}"
    );
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_allocation_whose_answer_was_lost_is_applied_once() {
    let stack = Stack::start(&[]).await;
    let o = simple("SO-8200", "lost-alloc@example.com");
    stack
        .publish(&event(&o, OrderEventType::Created, "al1"))
        .await;
    stack
        .wait_docs("SO-8200", T, |d| invoice(d, "SO-8200").is_some())
        .await;
    // The allocation is applied but no answer arrives (nor to the client's own quick retries,
    // so the writer gives up on the call), and its later retry falls outside the idempotency
    // window: Xero would not replay the first answer but refuse or apply the allocation again.
    stack
        .sandbox
        .settings(json!({
            "drop_after_apply": 3,
            "drop_after_apply_endpoint": "/allocations",
            "idempotency_secs": 0
        }))
        .await;
    let refund = refund_event(&o, "rf-lost", "RMA-L", vec![], dec!(11.50));
    stack.publish_refund(&refund).await;
    let deadline = tokio::time::Instant::now() + T;
    let entry = loop {
        let e = stack.ledger(&o.id).await;
        if let Some(e) = &e
            && e["credit_notes"]["rf-lost"]["done"] == true
        {
            break e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "allocation not confirmed: {e:?}\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        d(&entry["credit_notes"]["rf-lost"]["allocated"]),
        dec!(11.50)
    );
    let settings: Value = ledgerline_platform::tls::http_client("test")
        .unwrap()
        .get(format!("{}/admin/settings", stack.sandbox.base))
        .bearer_auth("sandbox-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["drop_after_apply"], 0, "the fault fired");
    let docs = stack.sandbox.documents().await;
    let cns = docs["CreditNotes"].as_array().unwrap();
    assert_eq!(cns.len(), 1);
    let allocs = cns[0]["Allocations"].as_array().unwrap();
    assert_eq!(allocs.len(), 1, "allocated exactly once: {allocs:?}");
    assert_eq!(d(&allocs[0]["Amount"]), dec!(11.50));
    assert_eq!(d(&cns[0]["RemainingCredit"]), dec!(0));
    let inv = invoice(&docs, "SO-8200").unwrap();
    assert_eq!(d(&inv["AmountCredited"]), dec!(11.50));
    assert_eq!(d(&inv["AmountDue"]), total_of(&o) - dec!(11.50));
    let log = stack.sandbox.requests().await;
    let at = |method: &str, endpoint: &str| {
        log.iter()
            .enumerate()
            .filter(|(_, r)| r["method"] == method && r["endpoint"] == endpoint)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let puts = at("PUT", "/creditnotes/{id}/allocations");
    let gets = at("GET", "/creditnotes/{id}");
    assert_eq!(puts.len(), 3, "the first call's attempts only: {log:?}");
    assert!(
        !gets.is_empty() && gets[0] > puts[2],
        "looked up after the lost answer, and not sent again"
    );
    assert!(stack.dead_letters().await.is_empty());
    let allocation_facts: Vec<_> = stack
        .facts()
        .await
        .into_iter()
        .filter(|f| f.kind() == XeroDocumentKind::Allocation && f.verb() == XeroVerb::Created)
        .collect();
    assert_eq!(allocation_facts.len(), 1, "{allocation_facts:?}");
    assert_eq!(allocation_facts[0].xero_id, allocs[0]["AllocationID"]);
    let amount: rust_decimal::Decimal = allocation_facts[0]
        .total
        .as_ref()
        .map(|m| m.amount.parse().unwrap())
        .unwrap_or_default();
    assert_eq!(amount, dec!(11.50));
}

#[tokio::test]
async fn a_refund_payment_whose_answer_was_lost_is_made_once() {
    let stack = Stack::start(&[]).await;
    let mut o = simple("SO-8300", "lost-refund@example.com");
    let total = total_of(&o);
    pay(&mut o, "pay-1", total);
    stack
        .publish(&event(&o, OrderEventType::Created, "rp1"))
        .await;
    stack
        .wait_docs("SO-8300 paid", T, |d| {
            invoice(d, "SO-8300").is_some_and(|i| i["Status"] == "PAID")
        })
        .await;
    // Paid in full: the refund is paid back from the credit note, and that answer is lost.
    stack
        .sandbox
        .settings(json!({
            "drop_after_apply": 3,
            "drop_after_apply_endpoint": "/payments",
            "idempotency_secs": 0
        }))
        .await;
    let refund = refund_event(&o, "rf-pay", "RMA-P", vec![], dec!(11.50));
    stack.publish_refund(&refund).await;
    let deadline = tokio::time::Instant::now() + T;
    let entry = loop {
        let e = stack.ledger(&o.id).await;
        if let Some(e) = &e
            && e["credit_notes"]["rf-pay"]["done"] == true
        {
            break e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "refund not confirmed: {e:?}\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d(&entry["credit_notes"]["rf-pay"]["refunded"]), dec!(11.50));
    assert_eq!(d(&entry["credit_notes"]["rf-pay"]["allocated"]), dec!(0));
    let docs = stack.sandbox.documents().await;
    let cns = docs["CreditNotes"].as_array().unwrap();
    assert_eq!(cns.len(), 1);
    let paid_back = cns[0]["Payments"].as_array().unwrap();
    assert_eq!(paid_back.len(), 1, "refunded exactly once: {paid_back:?}");
    assert_eq!(d(&cns[0]["RemainingCredit"]), dec!(0));
    assert!(stack.dead_letters().await.is_empty());
    let refund_facts = stack
        .facts()
        .await
        .into_iter()
        .filter(|f| {
            f.kind() == XeroDocumentKind::Payment
                && f.verb() == XeroVerb::Recorded
                && f.number == "rf-pay"
        })
        .count();
    assert_eq!(refund_facts, 1);
}
