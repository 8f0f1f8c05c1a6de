//! Issue 6 gaps: an unknown tracking option goes to review with the closest options (by
//! setting), and an allocation whose answer was lost is looked up in Xero, not made twice.

use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, ReasonClass, XeroDocumentKind};
use serde_json::Value;
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

fn calls(log: &[Value], method: &str, endpoint: &str) -> usize {
    log.iter()
        .filter(|r| r["method"] == method && r["endpoint"] == endpoint)
        .count()
}

#[tokio::test]
async fn an_unknown_tracking_option_goes_to_review_with_the_closest_option() {
    let stack = Stack::start(&["--unknown-tracking", "review"]).await;
    let mut bad = simple("SO-8100", "nowhere@example.com");
    bad.tracking.insert("Region".into(), "Nowhere".into());
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
    let dls = wait_dead_letters(&stack, 1).await;
    assert_eq!(dls.len(), 1, "only the unknown option is held");
    let dl = &dls[0];
    assert_eq!(dl.reason_class, ReasonClass::Mapping as i32);
    assert!(
        dl.error.contains("Nowhere") && dl.error.contains("Region"),
        "{}",
        dl.error
    );
    let first = &dl.suggestions[0];
    assert_eq!(first.field, "Tracking.Region");
    assert_eq!(first.current_value, "Nowhere");
    assert_eq!(first.suggested_value, "North Island");
    assert!(!first.reason.is_empty());
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
}

#[tokio::test]
async fn an_unknown_tracking_category_suggests_the_orgs_categories() {
    let stack = Stack::start(&["--unknown-tracking", "review"]).await;
    let mut bad = simple("SO-8110", "regoin@example.com");
    bad.tracking.insert("Regoin".into(), "Export".into());
    stack
        .publish(&event(&bad, OrderEventType::Created, "tc1"))
        .await;
    let dl = wait_dead_letters(&stack, 1).await.remove(0);
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
