//! The main job end to end: clarity-sim → webhook-ingest → normalizer → xero-writer →
//! xero-sandbox on a real nats-server, compared with clarity-sim's ground truth.

use ledgerline_demo::{Options, Stack};
use std::time::Duration;

/// The sandbox keeps Xero's limits; its minute is shortened (and the writer's windows with it)
/// so 1,000 orders fit a CI run.
fn options(orders: usize) -> Options {
    let mut o = Options::small(orders).at_time_scale(20);
    o.faults = "duplicates,reorder".into();
    o.timeout_secs = 600;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_with_duplicates_and_reordering_tie_out() {
    let opts = options(1000);
    let stack = Stack::start(&opts).await.unwrap();
    assert!(
        stack.missing.is_empty(),
        "services not built: {:?}",
        stack.missing
    );
    let truth = stack.send_orders(&opts).await.unwrap();
    let tie = stack
        .wait_converged(&truth, Duration::from_secs(opts.timeout_secs), |p| {
            eprintln!("{p}")
        })
        .await
        .unwrap();
    assert!(tie.ok(), "{tie}");
    let p = stack.progress().await.unwrap();
    assert_eq!(p.in_review, 0, "nothing dead-lettered: {p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_run_loses_and_duplicates_nothing() {
    let opts = options(400);
    let mut stack = Stack::start(&opts).await.unwrap();
    assert!(
        stack.missing.is_empty(),
        "services not built: {:?}",
        stack.missing
    );
    let truth = stack.send_orders(&opts).await.unwrap();
    // Let the writer get part of the way, then crash it and start a new one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while stack.progress().await.unwrap().invoiced < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never got going"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.restart_writer(&opts.writer_env).unwrap();
    let tie = stack
        .wait_converged(&truth, Duration::from_secs(opts.timeout_secs), |p| {
            eprintln!("{p}")
        })
        .await
        .unwrap();
    assert!(tie.ok(), "{tie}");
}
