//! A refund that waited for its order: the order is held in review (a sales channel Xero has no
//! tracking option for), its return arrives and the writer holds the refund as waiting on it;
//! fixing the order (the suggestion's `tracking_options` rule) writes the invoice, and the
//! review queue then replays the refund by itself, so the credit note follows, once.

use crate::helpers::*;
use serde_json::Value;

fn body(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&example(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_held_for_an_order_in_review_is_replayed_once_the_order_is_written() {
    let stack = Stack::start(Options {
        pipeline: true,
        writer_env: vec![("WRITER_UNKNOWN_TRACKING".into(), "review".into())],
        ..Default::default()
    })
    .await;
    // Order 1042 at version 4 through a channel the organisation lacks, then its return
    // (made against version 4).
    let order = body("example_sales_order_created.json", |v| {
        v["id"] = "evt_rw_order".into();
        v["data"]["Version"] = 4.into();
        v["data"]["SerializableAttributes"]["SalesChannel"]["Value"] = "Pop-up Shop".into();
    });
    stack
        .publish_raw("evt_rw_order", "sales_order.created", order)
        .await;
    assert!(
        eventually(WAIT, || async { stack.issues().await.len() == 1 }).await,
        "{}",
        stack.output()
    );
    let ret = body("example_sales_return_completed.json", |v| {
        v["id"] = "evt_rw_return".into();
    });
    stack
        .publish_raw("evt_rw_return", "sales_return.completed", ret)
        .await;
    // The refund waits, as an issue of its own.
    let waiting = || async {
        stack
            .issues()
            .await
            .into_iter()
            .find(|i| i["fault"]["code"] == "refund_awaits_order")
    };
    assert!(
        eventually(WAIT, || async { waiting().await.is_some() }).await,
        "{:?}\n{}",
        stack.issues().await,
        stack.output()
    );
    let refund_entry = waiting().await.unwrap()["sample_entry"]
        .as_str()
        .unwrap()
        .to_owned();

    // Fix the order: the first suggestion maps the store's channel to an option of the org's.
    let issue = stack
        .issues()
        .await
        .into_iter()
        .find(|i| i["fault"]["code"] == "unknown_tracking")
        .expect("the tracking issue");
    assert!(
        issue["suggestions"][0]["rule"]
            .as_str()
            .unwrap()
            .starts_with("[tracking_options.\"Sales Channel\"]\n\"Pop-up Shop\" = "),
        "{issue}"
    );
    let (s, fix) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/issues/{}/fix", issue["id"].as_str().unwrap()),
            serde_json::json!({"suggestion": 0}),
        )
        .await;
    assert_eq!(s, 200, "{fix}\n{}", stack.output());

    // The invoice, then the credit note: each once, and both entries resolved.
    let credit_notes = || async {
        let base = stack.sandbox.as_ref().unwrap().base_url();
        let tenants: Value = stack
            .http
            .get(format!("{base}/admin/tenants"))
            .bearer_auth(SANDBOX_ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tenant = tenants[0]["tenant_id"].as_str().unwrap().to_owned();
        let docs: Value = stack
            .http
            .get(format!("{base}/admin/tenants/{tenant}/documents"))
            .bearer_auth(SANDBOX_ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        docs["CreditNotes"].as_array().cloned().unwrap_or_default()
    };
    assert!(
        eventually(WAIT, || async {
            stack.invoices_of("SO-001042").await == 1 && credit_notes().await.len() == 1
        })
        .await,
        "invoices {:?}, credit notes {:?}\n{}",
        stack.invoices().await,
        credit_notes().await,
        stack.output()
    );
    assert!(
        eventually(WAIT, || async {
            stack.entry(&refund_entry).await["status"] == "resolved"
        })
        .await,
        "{}",
        stack.entry(&refund_entry).await
    );
    let audit: Vec<String> = stack.entry(&refund_entry).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["who"].as_str().unwrap(),
                a["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        audit.iter().any(|a| a == "system replay_requested"),
        "replayed by the queue itself: {audit:?}"
    );
    assert_eq!(credit_notes().await.len(), 1, "exactly once");
}
