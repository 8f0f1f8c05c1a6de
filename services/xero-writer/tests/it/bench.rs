//! Throughput against an unthrottled sandbox. Run (release, prints the figures):
//!
//! ```text
//! BENCH_ORDERS=2000 cargo nextest run --release -p xero-writer --run-ignored only bench --no-capture
//! ```

use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, OrderStatus};
use std::time::{Duration, Instant};

#[tokio::test]
#[ignore = "benchmark; run explicitly"]
async fn bench_unthrottled_orders_per_second() {
    let n: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let customers = 500;
    let mut stack = Stack::start(&[
        "--minute-limit",
        "1000000",
        "--day-limit",
        "100000000",
        "--concurrent-limit",
        "100",
    ])
    .await;
    stack
        .sandbox
        .settings(serde_json::json!({"minute_limit": 1_000_000, "day_limit": 100_000_000, "concurrent_limit": 100, "app_minute_limit": 10_000_000}))
        .await;
    // Publish everything first, then start the writer, so the figure is the writer's own rate.
    stack.writer.as_mut().unwrap().kill();
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let mut o = simple(
            &format!("SO-9{i:05}"),
            &format!("b{}@example.com", i % customers),
        );
        o.version = 2;
        o.status = OrderStatus::Paid as i32;
        let total = total_of(&o);
        pay(&mut o, &format!("pay-{i}"), total);
        events.push(event(&o, OrderEventType::Paid, &format!("bench-{i}")));
    }
    for e in &events {
        stack.publish(e).await;
    }
    let calls_before = total_calls(&stack.sandbox.counters().await);
    let started = Instant::now();
    stack.start_writer();
    // Progress from the writer's own metrics (reading every document would slow the sandbox).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let metrics = stack.metrics().await;
        if payments_written(&metrics) >= n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "benchmark timed out:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let docs = stack.sandbox.documents().await;
    let inv = invoices(&docs);
    assert_eq!(inv.len(), n);
    assert!(inv.iter().all(|i| i["Status"] == "PAID"));
    let calls = total_calls(&stack.sandbox.counters().await) - calls_before;
    println!(
        "BENCH orders={n} customers={customers} seconds={:.2} orders_per_s={:.0} xero_calls={calls} calls_per_order={:.3}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        calls as f64 / n as f64
    );
}

fn total_calls(counters: &serde_json::Value) -> u64 {
    counters["calls"]
        .as_object()
        .map(|m| {
            m.values()
                .flat_map(|per| per.as_object().into_iter().flat_map(|t| t.values()))
                .filter_map(|v| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn payments_written(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("xero_writer_writes_total") && l.contains("kind=\"payment\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
