//! Writer-stage entries: an account the organisation lacks. A later event that the writer can
//! write resolves its entry by itself; a fix and replays (twice) make one invoice each.

use crate::helpers::*;
use serde_json::{Value, json};

async fn entry_of(stack: &Stack, order_number: &str) -> Value {
    let (_, v) = stack
        .get(Some(OPERATOR), &format!("/v1/entries?q={order_number}"))
        .await;
    v["entries"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_fix_and_its_replays_write_each_order_once_and_a_later_event_resolves_its_entry() {
    let stack = Stack::start(Options {
        pipeline: true,
        mapping: Some("[accounts]\nproduct = \"299\"\n".into()),
        ..Default::default()
    })
    .await;
    for (ev, id) in [("evt_w1", 6001), ("evt_w2", 6002)] {
        stack
            .publish_raw(ev, "sales_order.created", order(ev, id, "GST15"))
            .await;
    }
    assert!(
        eventually(WAIT, || async {
            let all = stack.issues().await;
            all.len() == 1 && all[0]["open"] == 2
        })
        .await,
        "{:?}\n{}",
        stack.issues().await,
        stack.output()
    );
    let issue = stack.issues().await[0].clone();
    assert_eq!(issue["key"], "xero_writer/inactive_account/AccountCode/299");
    assert_eq!(issue["suggestions"][0]["suggested_value"], "200");
    let e1 = entry_of(&stack, "SO-006001").await;
    assert_eq!(e1["stage"], "xero_writer");
    assert_eq!(e1["entity"], "main/6001");

    // The operator fixes the mapping elsewhere; the store then sends a newer version of 6002.
    let overlay = stack.js.get_key_value("mapping_overlay").await.unwrap();
    overlay
        .put("ops", "[accounts]\nproduct = \"200\"\n".into())
        .await
        .unwrap();
    let mut v2: Value = serde_json::from_slice(&order("evt_w2b", 6002, "GST15")).unwrap();
    v2["type"] = "sales_order.updated".into();
    v2["data"]["Version"] = 2.into();
    stack
        .publish_raw(
            "evt_w2b",
            "sales_order.updated",
            serde_json::to_vec(&v2).unwrap(),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            entry_of(&stack, "SO-006002").await["status"] == "resolved"
        })
        .await,
        "the later event's write resolves the entry: {}\n{}",
        entry_of(&stack, "SO-006002").await,
        stack.output()
    );
    let e2 = stack
        .entry(entry_of(&stack, "SO-006002").await["id"].as_str().unwrap())
        .await;
    let last = e2["audit"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["who"], "system");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("written to Xero: invoice"),
        "{last}"
    );
    assert_eq!(stack.invoices_of("SO-006002").await, 1);

    // The fix, as a rule only, then two replays of 6001 in a row.
    let id = issue["id"].as_str().unwrap();
    let (s, fix) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/issues/{id}/fix"),
            json!({"suggestion": 0, "no_replay": true}),
        )
        .await;
    assert_eq!(s, 200, "{fix}");
    assert_eq!(fix["rule"], "[accounts]\nproduct = \"200\"\n");
    let e1_id = e1["id"].as_str().unwrap().to_owned();
    let (s, r1) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/entries/{e1_id}/replay"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{r1}");
    assert_eq!(r1["outcome"], "republished");
    assert!(
        r1["guard"].as_str().unwrap().contains("Idempotency-Key"),
        "inside Xero's window both guards apply: {r1}"
    );
    let (s, r2) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/entries/{e1_id}/replay"),
            Value::Null,
        )
        .await;
    assert!(s == 200 || s == 409, "{s} {r2}");
    assert!(
        eventually(WAIT, || async {
            stack.invoices_of("SO-006001").await == 1 && stack.orders_settled().await
        })
        .await,
        "{}",
        stack.output()
    );
    assert!(
        eventually(WAIT, || async {
            stack.entry(&e1_id).await["status"] == "resolved"
        })
        .await
    );
    assert_eq!(
        stack.invoices_of("SO-006001").await,
        1,
        "one invoice however many replays"
    );
    assert_eq!(stack.invoices_of("SO-006002").await, 1);
    assert_eq!(stack.count("DLQ").await, 2, "no replay failed");
    let (s, _) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/entries/{e1_id}/replay"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 409, "a resolved entry does not replay");
}
