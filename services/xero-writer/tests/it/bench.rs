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
    let rss = writer_peak_rss_mib(stack.writer.as_ref().unwrap());
    println!("BENCH writer_peak_rss_mib={rss:?}");
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

/// Xero's real limits at a time scale (default 60: one real second is one Xero minute): orders
/// arrive at 1,800 per scaled minute from 500 returning customers, above the 1,500 ceiling (60
/// calls of 50 documents, an invoice and a payment per order), so the writer is saturated and
/// the steady rate is the writer's, not the feed's. Measured from the end of the second scaled
/// minute to the last payment, on the real clock. A tenant's work between its calls (the pull,
/// ledger, facts, acks) does not shrink with the time scale, so at 60 it weighs 60 times what
/// it does against Xero's real minute: `BENCH_SCALED_SCALE=10` shows the difference. Run
/// (release):
///
/// ```text
/// BENCH_SCALED_MINUTES=10 cargo nextest run --release -p xero-writer --run-ignored only bench_scaled --no-capture
/// BENCH_SCALED_SCALE=10 cargo nextest run --release -p xero-writer --run-ignored only bench_scaled --no-capture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_scaled_limits_orders_per_scaled_minute() {
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let minutes = env("BENCH_SCALED_MINUTES", 10);
    let per_minute = env("BENCH_SCALED_RATE", 1800);
    let scale = env("BENCH_SCALED_SCALE", 60).max(1);
    // One scaled minute on the real clock, in seconds.
    let minute = 60.0 / scale as f64;
    let customers = 500u64;
    // The writer's longest linger is 0.4 s at scale 60: two-fifths of a scaled minute.
    let linger = format!("{}ms", (400.0 * minute) as u64);
    let stack = Stack::start(&["--time-scale", &scale.to_string(), "--max-linger", &linger]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"time_scale": scale as f64}))
        .await;
    let publisher = stack.publisher.clone();
    let total = per_minute * minutes;
    let started = Instant::now();
    let feeder = tokio::spawn(async move {
        // Every 10 ms, as many orders as keep the count at per_minute a scaled minute.
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut i = 0u64;
        let mut ticks = 0u64;
        while i < total {
            tick.tick().await;
            ticks += 1;
            let due = ((per_minute as f64 * ticks as f64 * 0.01 / minute) as u64).min(total);
            while i < due {
                let mut o = simple(
                    &format!("SO-{i:06}"),
                    &format!("s{}@example.com", i % customers),
                );
                o.version = 2;
                o.status = OrderStatus::Paid as i32;
                let t = total_of(&o);
                pay(&mut o, &format!("pay-{i}"), t);
                let ev = event(&o, OrderEventType::Paid, &format!("scaled-{i}"));
                publisher
                    .publish_proto(
                        ledgerline_contract::subjects::orders(
                            "main",
                            OrderEventType::Paid,
                            &o.id,
                            &o.number,
                        ),
                        &format!("scaled-{i}"),
                        &ev,
                        Default::default(),
                    )
                    .await
                    .expect("published");
                i += 1;
            }
        }
        Instant::now()
    });
    // Payments in each scaled minute, and (scaled minutes since start, paid) samples.
    let mut per_minute_paid = Vec::new();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut last = 0u64;
    let deadline = started + Duration::from_secs_f64(minutes as f64 * 3.0 * minute + 30.0);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = payments_written(&stack.metrics().await);
        let at = started.elapsed().as_secs_f64() / minute;
        if samples.last().is_none_or(|(t, _)| at.floor() > t.floor()) {
            per_minute_paid.push(now - last);
            last = now;
        }
        samples.push((at, now));
        if now >= total || Instant::now() > deadline {
            break;
        }
    }
    let fed_at = feeder.await.unwrap();
    let fed_minutes = (fed_at - started).as_secs_f64() / minute;
    let paid = samples.last().map_or(0, |s| s.1);
    let counters = stack.sandbox.counters().await;
    let calls = total_calls(&counters);
    let metrics = stack.metrics().await;
    let token_calls: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("xero_client_calls_total") && l.contains("/connect/token"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // Steady state: from the end of the second scaled minute (contacts are created before)
    // to the last payment. The feed outruns the ceiling, so a backlog keeps the writer
    // saturated all that time; payments land in bursts of whole batches, so a span that ends
    // at the last one measures the writer and not where a sample fell in a burst.
    let from = samples.iter().find(|(t, _)| *t >= 2.0).copied();
    let to = samples.iter().find(|(_, p)| *p >= total).copied();
    let avg = match (from, to) {
        (Some((t0, p0)), Some((t1, p1))) if t1 > t0 => (p1 - p0) as f64 / (t1 - t0),
        _ => 0.0,
    };
    let rss = writer_peak_rss_mib(stack.writer.as_ref().unwrap());
    println!("BENCH_SCALED writer_peak_rss_mib={rss:?}");
    println!(
        "BENCH_SCALED scale={scale} minutes={minutes} offered_per_scaled_min={per_minute} fed_in_scaled_min={fed_minutes:.1} paid={paid}/{total} steady_paid_per_scaled_min={avg:.0} ({:.0}% of 1500) throttled={} api_calls={calls} token_calls={token_calls} calls_per_order={:.4} per_scaled_min={per_minute_paid:?}",
        avg / 15.0,
        counters["throttled"],
        (calls as f64 + token_calls) / paid.max(1) as f64,
    );
}

/// Latency from an order event published on ORDERS to the writer's "invoice created" fact
/// (Xero confirmed it), at 50 orders/s against an unthrottled sandbox. Run (release):
///
/// ```text
/// cargo nextest run --release -p xero-writer --run-ignored only bench_latency --no-capture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_latency_event_to_invoice_at_50_per_second() {
    let n = 500usize;
    let stack = Stack::start(&["--minute-limit", "1000000", "--day-limit", "100000000"]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"minute_limit": 1_000_000, "day_limit": 100_000_000, "concurrent_limit": 100}))
        .await;
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let mut facts = client.subscribe("xero.*.invoice.created.>").await.unwrap();
    let sent = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let publisher = stack.publisher.clone();
    let sent2 = sent.clone();
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..n {
            tick.tick().await;
            let number = format!("SO-L{i:05}");
            let o = simple(&number, &format!("l{}@example.com", i % 100));
            let ev = event(&o, OrderEventType::Created, &format!("lat-{i}"));
            sent2.lock().unwrap().insert(number, Instant::now());
            publisher
                .publish_proto(
                    ledgerline_contract::subjects::orders(
                        "main",
                        OrderEventType::Created,
                        &o.id,
                        &o.number,
                    ),
                    &format!("lat-{i}"),
                    &ev,
                    Default::default(),
                )
                .await
                .unwrap();
        }
    });
    let mut lat = Vec::with_capacity(n);
    // The first 100 orders are new customers' (a contact is created first), the rest returning.
    let (mut new, mut returning) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    use futures::StreamExt;
    use prost::Message as _;
    while lat.len() < n && Instant::now() < deadline {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), facts.next()).await else {
            break;
        };
        let fact = ledgerline_contract::v1::XeroFact::decode(m.payload.as_ref()).unwrap();
        if let Some(t) = sent.lock().unwrap().get(&fact.number) {
            lat.push(t.elapsed());
            let i: usize = fact.number.trim_start_matches("SO-L").parse().unwrap();
            if i < 100 { &mut new } else { &mut returning }.push(t.elapsed());
        }
    }
    feeder.await.unwrap();
    for (label, lat) in [
        ("all", &mut lat),
        ("new_customers", &mut new),
        ("returning", &mut returning),
    ] {
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "BENCH_LATENCY {label} orders={} p50_ms={} p90_ms={} p99_ms={} max_ms={}",
            lat.len(),
            pct(0.50).as_millis(),
            pct(0.90).as_millis(),
            pct(0.99).as_millis(),
            lat.last().unwrap().as_millis()
        );
    }
    let metrics = stack.metrics().await;
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("xero_client_budget_on_pace"))
    {
        println!("BENCH_LATENCY {l}");
    }
    assert_eq!(lat.len(), n);
}

/// Peak RSS (VmHWM) of the writer process, in MiB (Linux only).
fn writer_peak_rss_mib(writer: &ledgerline_testkit::ServiceProcess) -> Option<f64> {
    writer.peak_rss_kib().map(|k| k as f64 / 1024.0)
}

/// One organisation on Xero's Starter tier for a day (1,000 calls), at time scale 1440 (a day
/// lasts 60 s, a minute 42 ms): returning customers' paid orders arrive faster than the day's
/// calls can carry, and the figure is how many orders the day takes. Every call within the
/// limits (0 x 429) and nothing lost: what the day cannot carry waits in the stream for the next.
/// Run (release):
///
/// ```text
/// cargo nextest run --release -p xero-writer --run-ignored only bench_starter_day --no-capture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_starter_day_orders_one_organisation_takes() {
    let scale = 1440.0;
    let day_limit = 1000u32;
    let stack = Stack::start(&[
        "--time-scale",
        "1440",
        "--day-limit",
        &day_limit.to_string(),
    ])
    .await;
    stack
        .sandbox
        .settings(serde_json::json!({"time_scale": scale, "day_limit": day_limit + 5}))
        .await;
    let publisher = stack.publisher.clone();
    let customers = 500u64;
    // 500 orders a real second for the scaled day: 30,000, more than 1,000 calls can carry.
    let day = Duration::from_secs(60);
    let started = Instant::now();
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut i = 0u64;
        while started.elapsed() < day {
            tick.tick().await;
            for _ in 0..5 {
                let mut o = simple(
                    &format!("SD-{i:06}"),
                    &format!("d{}@example.com", i % customers),
                );
                o.version = 2;
                o.status = OrderStatus::Paid as i32;
                let t = total_of(&o);
                pay(&mut o, &format!("pay-{i}"), t);
                let ev = event(&o, OrderEventType::Paid, &format!("day-{i}"));
                publisher
                    .publish_proto(
                        ledgerline_contract::subjects::orders(
                            "main",
                            OrderEventType::Paid,
                            &o.id,
                            &o.number,
                        ),
                        &format!("day-{i}"),
                        &ev,
                        Default::default(),
                    )
                    .await
                    .expect("published");
                i += 1;
            }
        }
        i
    });
    let offered = feeder.await.unwrap();
    // The day is over: what was paid within it.
    let paid = payments_written(&stack.metrics().await);
    let counters = stack.sandbox.counters().await;
    let calls = total_calls(&counters);
    println!(
        "BENCH_DAY day_limit={day_limit} offered={offered} paid_in_the_day={paid} api_calls={calls} calls_per_order={:.4} throttled={}",
        calls as f64 / paid.max(1) as f64,
        counters["throttled"]
    );
    assert_eq!(counters["throttled"], 0, "{counters}");
    assert!(
        stack.dead_letters().await.is_empty(),
        "nothing dead-lettered"
    );
    assert!(
        calls <= u64::from(day_limit) + 5,
        "{calls} calls in a day of {day_limit}"
    );
}

/// Batches grow with the backlog under a scarce minute budget (20 calls a scaled minute of
/// 1 s): a few orders cost about a call each, a backlog of 400 costs a call per 50 or so, and
/// no order waits longer than the bound (`WRITER_MAX_LINGER` plus a few windows: 15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_grow_with_the_backlog_when_the_minute_budget_is_scarce() {
    let stack = Stack::start(&["--time-scale", "60", "--minute-limit", "20"]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"time_scale": 60.0}))
        .await;
    let calls = || async { total_calls(&stack.sandbox.counters().await) };
    let publish = |from: usize, n: usize| {
        let stack = &stack;
        async move {
            for i in from..from + n {
                let o = simple(&format!("SG-{i:05}"), &format!("g{}@example.com", i % 5));
                stack
                    .publish(&event(&o, OrderEventType::Created, &format!("grow-{i}")))
                    .await;
            }
        }
    };
    let bound = Duration::from_secs(15);
    // Warm-up: settings and the five contacts.
    publish(0, 5).await;
    stack
        .wait_docs("warm-up", bound, |d| invoices(d).len() == 5)
        .await;
    let base = calls().await;
    // A trickle: a few orders, one at a time.
    for i in 5..10 {
        publish(i, 1).await;
        stack
            .wait_docs("a trickled order", bound, |d| invoices(d).len() == i + 1)
            .await;
    }
    let trickle = calls().await - base;
    // A backlog of 400 at once: every order invoiced within the bound.
    let started = Instant::now();
    publish(10, 400).await;
    stack
        .wait_docs("the backlog", bound, |d| invoices(d).len() == 410)
        .await;
    let waited = started.elapsed();
    let backlog = calls().await - base - trickle;
    let (per_trickled, per_backlogged) = (trickle as f64 / 5.0, backlog as f64 / 400.0);
    println!(
        "calls per order: trickle {per_trickled:.2} (5 orders), backlog {per_backlogged:.3} (400 orders, all invoiced in {waited:?})"
    );
    assert!(
        per_backlogged * 10.0 < per_trickled,
        "calls per order fall as the backlog grows: {per_trickled} -> {per_backlogged}"
    );
    assert!(per_backlogged <= 0.05, "{backlog} calls for 400 orders");
    assert_eq!(stack.sandbox.counters().await["throttled"], 0);
}
