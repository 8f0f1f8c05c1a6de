//! Bulk replay: a dry-run count, a paced run with progress, one at a time, cancelled halfway,
//! and a report of what it did.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_entries_replay_paced_and_a_cancel_stops_the_run_halfway() {
    let stack = Stack::start(Options {
        env: vec![("DEAD_LETTER_REPLAY_RATE".into(), "100".into())],
        ..Default::default()
    })
    .await;
    for n in 0..1000u64 {
        publish_dead_letter_at(&stack.js, true, "main", 10_000 + n, "GST0", 0).await;
    }
    assert!(
        eventually(WAIT, || async {
            stack.get(Some(OPERATOR), "/v1/entries?limit=1").await.1["total"] == 1000
        })
        .await,
        "{}",
        stack.output()
    );
    let filter = json!({"stage": "xero_writer", "fault": "unknown_tax_code"});
    let (s, dry) = stack
        .post(
            Some(OPERATOR),
            "/v1/replays",
            json!({"filter": filter, "dry_run": true}),
        )
        .await;
    assert_eq!((s, dry["count"].as_u64()), (200, Some(1000)));
    let started = Instant::now();
    let (s, job) = stack
        .post(Some(OPERATOR), "/v1/replays", json!({"filter": filter}))
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["total"], 1000);
    let id = job["id"].as_str().unwrap().to_owned();
    let (s, second) = stack
        .post(Some(OPERATOR), "/v1/replays", json!({"filter": filter}))
        .await;
    assert_eq!(s, 409, "one bulk replay at a time: {second}");

    let progress = || async {
        stack
            .get(Some(OPERATOR), &format!("/v1/replays/{id}"))
            .await
            .1
    };
    assert!(
        eventually(WAIT, || async {
            progress().await["done"].as_u64().unwrap_or(0) >= 300
        })
        .await
    );
    let (s, c) = stack
        .post(
            Some(OPERATOR),
            &format!("/v1/replays/{id}/cancel"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert!(eventually(WAIT, || async { progress().await["state"] == "cancelled" }).await);
    let elapsed = started.elapsed().as_secs_f64();
    let report = progress().await;
    let done = report["done"].as_u64().unwrap();
    assert!((300..1000).contains(&done), "stopped partway: {report}");
    assert_eq!(report["replayed"].as_u64().unwrap(), done, "{report}");
    assert_eq!(report["failed"], 0);
    assert!(report["finished_at"].is_string());
    // Paced: 100 a second at most.
    assert!(
        elapsed >= (done as f64 - 1.0) / 100.0,
        "{done} replays in {elapsed:.2} s"
    );
    // What it reports is what happened: that many republished, that many entries replayed,
    // the rest still open.
    assert_eq!(stack.count("ORDERS").await, done);
    let (_, replayed) = stack
        .get(Some(OPERATOR), "/v1/entries?status=replayed&limit=1")
        .await;
    assert_eq!(replayed["total"].as_u64().unwrap(), done);
    let (_, open) = stack
        .get(Some(OPERATOR), "/v1/entries?status=open&limit=1")
        .await;
    assert_eq!(open["total"].as_u64().unwrap(), 1000 - done);
    // The lock is free again: the next run starts (and covers only what is still to do).
    let (s, next) = stack
        .post(
            Some(OPERATOR),
            "/v1/replays",
            json!({"filter": {"status": "open"}}),
        )
        .await;
    assert_eq!(s, 202, "{next}");
    assert_eq!(next["total"].as_u64().unwrap(), 1000 - done);
    let next = next["id"].as_str().unwrap();
    stack
        .post(
            Some(OPERATOR),
            &format!("/v1/replays/{next}/cancel"),
            Value::Null,
        )
        .await;
}
