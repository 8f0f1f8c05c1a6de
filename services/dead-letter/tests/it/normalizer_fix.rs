//! The tax-code fix, end to end: an order with a tax code the mapping lacks becomes one issue;
//! applying its first suggestion puts the invoice in xero-sandbox once; the next order with the
//! code goes straight through.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tax_code_is_one_issue_fixed_once_and_written_once() {
    let stack = Stack::start(Options {
        pipeline: true,
        ..Default::default()
    })
    .await;
    // Two orders with the same unknown code (GST12 at 15%): one issue, two entries.
    stack
        .publish_raw(
            "evt_a",
            "sales_order.created",
            order("evt_a", 5001, "GST12"),
        )
        .await;
    stack
        .publish_raw(
            "evt_b",
            "sales_order.created",
            order("evt_b", 5002, "GST12"),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            let all = stack.issues().await;
            all.len() == 1 && all[0]["open"] == 2
        })
        .await,
        "one issue with both orders: {:?}\n{}",
        stack.issues().await,
        stack.output()
    );
    let issue = stack.issues().await[0].clone();
    assert_eq!(issue["key"], "normalizer/unknown_tax_code/tax_code/GST12");
    let first = &issue["suggestions"][0];
    assert!(
        first["suggested_value"]
            .as_str()
            .unwrap()
            .contains("OUTPUT2"),
        "the first suggestion is the tax type with that rate: {first}"
    );
    assert!(
        first["rule"]
            .as_str()
            .unwrap()
            .contains("[tax_codes.\"GST12\"]")
    );

    // Apply it: one rule, both entries replayed through the normalizer.
    let id = issue["id"].as_str().unwrap();
    let (s, fix) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/issues/{id}/fix"),
            serde_json::json!({"suggestion": 0}),
        )
        .await;
    assert_eq!(s, 200, "{fix}\n{}", stack.output());
    let replays = fix["replays"].as_array().unwrap();
    assert_eq!(replays.len(), 2, "{fix}");
    assert!(
        replays.iter().all(|r| r["outcome"] == "reprocessed"),
        "{fix}"
    );
    assert_eq!(stack.count("RAW").await, 2, "nothing appended to RAW");

    // Each order lands in Xero exactly once, and its entry resolves itself from the fact.
    assert!(
        eventually(WAIT, || async {
            stack.invoices_of("SO-005001").await == 1 && stack.invoices_of("SO-005002").await == 1
        })
        .await,
        "invoices: {:?}\n{}",
        stack.invoices().await,
        stack.output()
    );
    let entries = |s: &'static str| {
        let stack = &stack;
        async move {
            let (_, v) = stack
                .get(Some(OPERATOR), &format!("/v1/entries?status={s}"))
                .await;
            v["total"].as_u64().unwrap_or(0)
        }
    };
    assert!(
        eventually(WAIT, || async { entries("resolved").await == 2 }).await,
        "{}",
        stack.output()
    );
    let (_, list) = stack
        .get(Some(OPERATOR), "/v1/entries?status=resolved")
        .await;
    let e = stack
        .entry(list["entries"][0]["id"].as_str().unwrap())
        .await;
    let actions: Vec<&str> = e["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "received",
            "fix_applied",
            "replay_requested",
            "reprocessed",
            "resolved"
        ],
        "{e}"
    );

    // Replaying a resolved entry is refused: nothing can make a second document.
    let (s, _) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/entries/{}/replay", e["id"].as_str().unwrap()),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, 409);

    // A later order with the same code goes straight through: the rule is in the overlay.
    stack
        .publish_raw(
            "evt_c",
            "sales_order.created",
            order("evt_c", 5003, "GST12"),
        )
        .await;
    assert!(
        eventually(WAIT, || async { stack.invoices_of("SO-005003").await == 1 }).await,
        "{}",
        stack.output()
    );
    assert_eq!(stack.count("DLQ").await, 2, "no new dead letter");
    assert!(stack.orders_settled().await || eventually(WAIT, || stack.orders_settled()).await);
    assert_eq!(stack.invoices_of("SO-005001").await, 1);
    assert_eq!(stack.invoices_of("SO-005002").await, 1);
}
