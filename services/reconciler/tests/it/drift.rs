//! Drift induced as it happens in production, and what the reconciler makes of it: found
//! through Xero's webhooks within seconds, published on RECON, repaired through the writer
//! where the policy says so, and closed once gone; the writer's own writes raise nothing; a
//! rebuild from the streams gives the same projection.

use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, OrderStatus};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn has(f: &[(String, String)], kind: &str, order: &str) -> bool {
    f.iter().any(|(k, o)| k == kind && o == order)
}

async fn written(stack: &Stack, id: &str) -> bool {
    stack.view(id).await.is_some_and(|v| {
        v["xero"]["invoices"]
            .as_object()
            .is_some_and(|m| m.values().any(|d| !d["written"].is_null()))
    })
}

async fn written_and_observed(stack: &Stack, id: &str) -> bool {
    stack.view(id).await.is_some_and(|v| {
        v["xero"]["invoices"].as_object().is_some_and(|m| {
            m.values()
                .any(|d| !d["written"].is_null() && !d["observed"].is_null())
        })
    })
}

async fn invoice_id(stack: &Stack, number: &str) -> String {
    stack.invoice(number).await.unwrap()["InvoiceID"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_in_xero_are_found_in_seconds_and_reported_not_overwritten() {
    // A poll every 2 s (in a larger share of the day) reads the writer's own writes too.
    let stack = Stack::start(&[("RECON_POLL_INTERVAL", "2s"), ("RECON_DAY_SHARE", "0.5")]).await;
    // A paid order, and one not paid yet.
    let paid = order("1001", 2, OrderStatus::Paid, true);
    stack
        .publish(&event(&paid, OrderEventType::Paid, "e1001"))
        .await;
    let open = order("1002", 1, OrderStatus::Confirmed, false);
    stack
        .publish(&event(&open, OrderEventType::Created, "e1002"))
        .await;
    assert!(
        eventually(WAIT, || async {
            written_and_observed(&stack, "1001").await && written_and_observed(&stack, "1002").await
        })
        .await,
        "both written, and read back by the poll\n{}",
        stack.output()
    );
    // The writer's own writes raise nothing, even past the SLAs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stack.findings().await.is_empty(),
        "{:?}\n{}",
        stack.findings().await,
        stack.output()
    );
    let c = stack.counters().await;
    assert!(c["webhooks_delivered"].as_u64().unwrap_or(0) > 0, "{c}");
    assert_eq!(
        c["webhook_itr_passed"], true,
        "the intent-to-receive handshake passed: {c}"
    );

    // A person voids the open order's invoice in Xero.
    let id = invoice_id(&stack, "SO-1002").await;
    let voided_at = Instant::now();
    stack
        .as_accountant(
            Method::POST,
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"InvoiceID": id, "Status": "VOIDED"}]}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            has(&stack.findings().await, "changed_in_xero", "main/1002")
        })
        .await,
        "{:?}\n{}",
        stack.findings().await,
        stack.output()
    );
    let found_in = voided_at.elapsed();
    println!("RECON void in Xero found in {found_in:?} (webhook)");
    assert!(
        found_in < Duration::from_secs(10),
        "{found_in:?}\n{}\n{}",
        stack.counters().await,
        stack.output()
    );
    let events = stack.recon_events().await;
    let f = events
        .iter()
        .find(|f| f.kind == "changed_in_xero" && f.order_id == "1002" && f.open)
        .expect("published on RECON");
    assert_eq!(f.policy, "report");
    assert_eq!(f.xero_side["status"], "VOIDED");
    assert_eq!(f.store_side["written status"], "AUTHORISED");
    // Reported, not overwritten: no new invoice appears.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let docs = stack.documents().await;
    let live: Vec<&Value> = docs["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["InvoiceNumber"].as_str().unwrap().starts_with("SO-1002"))
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["Status"], "VOIDED");

    // A person deletes the paid order's payment: not paid in Xero any more; the default
    // policy repairs it (the writer applies the payment again) and the finding closes.
    let inv = stack.invoice("SO-1001").await.unwrap();
    let payment = inv["Payments"][0]["PaymentID"].as_str().unwrap().to_owned();
    stack
        .as_accountant(
            Method::POST,
            &format!("/Payments/{payment}"),
            json!({"Payments": [{"PaymentID": payment, "Status": "DELETED"}]}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            stack
                .recon_events()
                .await
                .iter()
                .any(|f| f.kind == "not_paid" && f.order_id == "1001" && f.open)
        })
        .await,
        "{:?}\n{}",
        stack.findings().await,
        stack.output()
    );
    assert!(
        eventually(WAIT, || async {
            stack
                .invoice("SO-1001")
                .await
                .is_some_and(|i| i["Status"] == "PAID")
                && !has(&stack.findings().await, "not_paid", "main/1001")
        })
        .await,
        "paid again and closed: {:?}\n{}",
        stack.invoice("SO-1001").await,
        stack.output()
    );
    let events = stack.recon_events().await;
    let opened = events
        .iter()
        .find(|f| f.kind == "not_paid" && f.open)
        .unwrap();
    assert_eq!(
        (opened.policy.as_str(), opened.action_taken.as_str()),
        ("repair", "repair requested")
    );
    assert!(
        events.iter().any(|f| f.kind == "not_paid" && !f.open),
        "closed on RECON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_repair_policy_an_invoice_voided_in_xero_is_issued_again() {
    let stack = Stack::start(&[("RECON_POLICIES", "changed_in_xero=repair")]).await;
    let o = order("2001", 1, OrderStatus::Confirmed, false);
    stack
        .publish(&event(&o, OrderEventType::Created, "e2001"))
        .await;
    assert!(
        eventually(WAIT, || async { written(&stack, "2001").await }).await,
        "{}",
        stack.output()
    );
    // A person acts a while after the writer (a webhook within seconds of the writer's own
    // write is taken as that write; the poll reads anything closer).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let id = invoice_id(&stack, "SO-2001").await;
    stack
        .as_accountant(
            Method::POST,
            &format!("/Invoices/{id}"),
            json!({"Invoices": [{"InvoiceID": id, "Status": "VOIDED"}]}),
        )
        .await;
    // Issued again under the reissue numbering, and nothing left open.
    assert!(
        eventually(WAIT, || async {
            stack.invoice("SO-2001-R1").await.is_some_and(|i| {
                i["Status"] == "AUTHORISED" && i["Total"].to_string().contains("115")
            })
        })
        .await,
        "{:?}\n{}",
        stack.documents().await,
        stack.output()
    );
    assert!(
        eventually(WAIT, || async { stack.findings().await.is_empty() }).await,
        "{:?}\n{}",
        stack.findings().await,
        stack.output()
    );
    assert!(
        stack
            .recon_events()
            .await
            .iter()
            .any(|f| f.kind == "changed_in_xero" && f.open && f.action_taken == "repair requested")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lost_on_the_way_is_found_after_its_sla_and_written() {
    let mut stack = Stack::start(&[]).await;
    // The writer is down; the order's message is taken off its consumer, as if lost.
    stack.stop_writer();
    let o = order("3001", 1, OrderStatus::Confirmed, false);
    stack
        .publish(&event(&o, OrderEventType::Created, "e3001"))
        .await;
    let consumer: async_nats::jetstream::consumer::PullConsumer = stack
        .js
        .get_consumer_from_stream(
            ledgerline_contract::consumers::writer_orders_name(&stack.tenant),
            "ORDERS",
        )
        .await
        .unwrap();
    use futures::StreamExt;
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut dropped = 0;
    while let Some(Ok(m)) = batch.next().await {
        m.ack().await.unwrap();
        dropped += 1;
    }
    assert_eq!(dropped, 1, "the order's message acked without a write");
    stack.start_writer();
    // Past the 2 s SLA: no invoice; the default policy repairs (the writer takes the order's
    // newest snapshot from ORDERS), and the finding closes.
    assert!(
        eventually(WAIT, || async {
            stack
                .recon_events()
                .await
                .iter()
                .any(|f| f.kind == "no_invoice" && f.order_id == "3001" && f.open)
        })
        .await,
        "{}",
        stack.output()
    );
    assert!(
        eventually(WAIT, || async {
            stack.invoice("SO-3001").await.is_some()
                && !has(&stack.findings().await, "no_invoice", "main/3001")
        })
        .await,
        "{:?}\n{:?}\n{}",
        stack.findings().await,
        stack.recon_events().await,
        stack.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receiver_refuses_a_bad_signature_and_a_rebuild_gives_the_same_projection() {
    let mut stack = Stack::start(&[]).await;
    let url = format!("{}/webhooks/xero", stack.recon.base_url());
    let body = r#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"x"}"#;
    let bad = stack
        .http
        .post(&url)
        .header("x-xero-signature", "bm90IHRoZSBzaWduYXR1cmU=")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.bytes().await.unwrap().is_empty(),
        "an empty body, as Xero expects"
    );
    let none = stack.http.post(&url).body(body).send().await.unwrap();
    assert_eq!(none.status(), 401);

    for i in 0..5 {
        let id = format!("{}", 4001 + i);
        let o = order(&id, 2, OrderStatus::Paid, true);
        stack
            .publish(&event(&o, OrderEventType::Paid, &format!("e{id}")))
            .await;
    }
    assert!(
        eventually(WAIT, || async {
            let mut all = true;
            for i in 0..5 {
                all &= written(&stack, &format!("{}", 4001 + i)).await;
            }
            all
        })
        .await,
        "{}",
        stack.output()
    );
    // Once it has taken in everything: stop the service, keep its views, rebuild from the
    // streams, compare.
    assert!(
        eventually(WAIT, || async { stack.recon_caught_up().await }).await,
        "{}",
        stack.output()
    );
    // Each order tied out once, at its first version: the histogram counts five.
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.recon.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("recon_order_tie_out_seconds_count{stage=\"order\"} 5")),
        "{metrics}"
    );
    stack.recon.terminate(Duration::from_secs(20));
    let before = views(&stack).await;
    assert_eq!(before.len(), 5);
    let out = std::process::Command::new(ledgerline_testkit::workspace_binary("reconciler"))
        .args(["rebuild", "--quiet"])
        .env("NATS_URL", stack.nats.url())
        .env_remove("LEDGERLINE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = views(&stack).await;
    assert_eq!(before, after, "the same projection from the streams alone");
}

/// Every view in the bucket, without its findings (those are evaluated again after a rebuild).
async fn views(stack: &Stack) -> std::collections::BTreeMap<String, Value> {
    use futures::TryStreamExt;
    let kv = stack.js.get_key_value("recon_projection").await.unwrap();
    let keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for k in keys.into_iter().filter(|k| k.starts_with("o.")) {
        let v = kv.get(&k).await.unwrap().unwrap();
        let mut j: Value = serde_json::from_slice(&v).unwrap();
        j.as_object_mut().unwrap().remove("findings");
        out.insert(k, j);
    }
    out
}
