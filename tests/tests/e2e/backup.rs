//! Backup and restore on the whole pipeline: orders written to Xero, the services stopped,
//! `ledgerline backup`, the nats-server's store wiped, `ledgerline restore`, the services
//! started again, the store sending every webhook a second time, and a fix from the review
//! queue replaying an order from the restored RAW: every order in Xero exactly once.

use ledgerline_demo::{Options, Stack};
use ledgerline_testkit::{NatsServer, find_workspace_binary};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn ledgerline(nats: &str, args: &[&str]) -> Value {
    let bin = find_workspace_binary("ledgerline").expect("ledgerline is built");
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--json")
        .env("NATS_URL", nats)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ledgerline {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every durable consumer's position, by stream and consumer: `acked` the stream sequence up
/// to which everything was acknowledged, else the last delivered (a restored consumer has
/// delivered nothing, so its delivered position is where it starts from).
async fn positions(nats: &str, acked: bool) -> BTreeMap<(String, String), u64> {
    use futures::{StreamExt, TryStreamExt};
    let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for name in names {
        let stream = js.get_stream(&name).await.unwrap();
        let mut consumers = stream.consumers();
        while let Some(c) = consumers.next().await {
            let c = c.unwrap();
            if let Some(durable) = c.config.durable_name.clone() {
                let at = if acked { c.ack_floor } else { c.delivered };
                out.insert((name.clone(), durable), at.stream_sequence);
            }
        }
    }
    out
}

fn per_stream(summary: &Value) -> BTreeMap<String, u64> {
    summary["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["messages"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_onto_a_wiped_server_carries_on_with_nothing_lost_or_twice() {
    let mut nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let mut opts = Options::small(120).at_time_scale(20);
    opts.nats_url = Some(nats.url());
    opts.review_orders = 1;
    let mut stack = Stack::start(&opts).await.unwrap();
    assert!(stack.missing.is_empty(), "{:?}", stack.missing);
    let truth = stack.send_orders(&opts).await.unwrap();
    let tie = stack
        .wait_converged(&truth, Duration::from_secs(300), |_| {})
        .await
        .unwrap();
    assert!(tie.ok(), "{tie}");
    let held = stack.in_review().await.unwrap();
    assert!(!held.is_empty());

    // Back up with the services stopped (a live backup is a cut per stream, not one moment).
    stack.stop_services();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let floors = positions(&nats.url(), true).await;
    assert!(floors.len() >= 5, "{floors:?}");
    let taken = ledgerline(&nats.url(), &["backup", "--out", out.to_str().unwrap()]);
    let streams = per_stream(&taken);
    for s in [
        "RAW",
        "ORDERS",
        "XERO",
        "DLQ",
        "KV_ledger",
        "KV_dead_letters",
    ] {
        assert!(streams.get(s).is_some_and(|n| *n > 0), "{s} in {streams:?}");
    }

    // A lost server: its store wiped, started empty.
    nats.stop();
    std::fs::remove_dir_all(nats.store_dir()).unwrap();
    std::fs::create_dir_all(nats.store_dir()).unwrap();
    nats.start_again();
    let restored = ledgerline(&nats.url(), &["restore", "--from", out.to_str().unwrap()]);
    assert_eq!(per_stream(&restored), streams, "every message back");
    // Every consumer starts right after what it had acknowledged (not at the stream's start;
    // what it had acknowledged out of order after that comes again, and is written once).
    assert_eq!(positions(&nats.url(), false).await, floors);
    assert!(
        restored["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["duplicates"] == 0
                && (s["renumbered"] == 0 || s["name"].as_str().unwrap().starts_with("KV_"))),
        "{restored:#}"
    );
    // A second restore onto the same server is refused, not doubled.
    let bin = find_workspace_binary("ledgerline").unwrap();
    let again = std::process::Command::new(bin)
        .args(["restore", "--from", out.to_str().unwrap()])
        .env("NATS_URL", nats.url())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));

    // The services carry on: the review queue as it was; the store's webhooks all arrive a
    // second time (stored once, written once); and a fix applied in the queue replays an order
    // from the restored RAW into Xero.
    stack.start_services().unwrap();
    assert_eq!(
        stack.in_review().await.unwrap(),
        held,
        "the review queue kept"
    );
    let again = stack.send_orders(&opts).await.unwrap();
    assert_eq!(again.orders.len(), truth.orders.len());
    let http = stack.http().clone();
    let dl = stack.dead_letter.as_ref().unwrap().base_url();
    let issues: Value = http
        .get(format!("{dl}/v1/issues"))
        .bearer_auth(&stack.operator_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tax = issues
        .as_array()
        .unwrap_or_else(|| panic!("GET /v1/issues is a list: {issues:#}"))
        .iter()
        .find(|i| i["key"].as_str().unwrap_or("").contains("unknown_tax_code"))
        .unwrap_or_else(|| panic!("the tax-code issue: {issues:#}"))
        .clone();
    let fix: Value = http
        .post(format!(
            "{dl}/v1/issues/{}/fix",
            tax["id"].as_str().unwrap()
        ))
        .bearer_auth(&stack.operator_token)
        .json(&serde_json::json!({"suggestion": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        fix["replays"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["outcome"] == "reprocessed")),
        "{fix:#}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let tie = loop {
        let held_now = stack.in_review().await.unwrap();
        let tie = ledgerline_demo::tie_out(&truth, &stack.documents().await.unwrap(), &held_now);
        if (tie.ok() && held_now.len() < held.len()) || tokio::time::Instant::now() > deadline {
            assert!(
                held_now.len() < held.len(),
                "the fixed order left the queue"
            );
            break tie;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(tie.ok(), "nothing lost, nothing twice: {tie}");
}
