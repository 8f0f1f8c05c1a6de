//! Xero as it is in 2026: granular scopes for new apps, the tiers' day limits, egress counted
//! and alerted (FACTS.md §8, §12).

use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, OrderStatus, XeroUsageKind};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn metric_sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn paid_orders(stack: &Stack, prefix: &str, n: usize, customers: usize) {
    for i in 0..n {
        let mut o = simple(
            &format!("{prefix}-{i:04}"),
            &format!("{prefix}{}@example.com", i % customers),
        );
        o.version = 2;
        o.status = OrderStatus::Paid as i32;
        let total = total_of(&o);
        pay(&mut o, &format!("{prefix}-pay-{i}"), total);
        stack
            .publish(&event(&o, OrderEventType::Paid, &format!("{prefix}-{i}")))
            .await;
    }
}

#[tokio::test]
async fn the_writer_connects_to_a_granular_app_with_its_defaults_and_an_old_app_with_broad_scopes()
{
    // A new app (the sandbox's default) and the writer's default scopes: client credentials.
    let stack = Stack::start(&[]).await;
    paid_orders(&stack, "GR", 3, 3).await;
    stack
        .wait_docs("granular app: paid", T, |d| {
            let inv = invoices(d);
            inv.len() == 3 && inv.iter().all(|i| i["Status"] == "PAID")
        })
        .await;
    let counters = stack.sandbox.counters().await;
    assert_eq!(counters["statuses"].get("401"), None, "{counters}");
    drop(stack);

    // Broad scopes asked of a new app: Xero's invalid_scope, explained, and nothing written.
    let stack = Stack::start(&["--xero-legacy-scopes"]).await;
    paid_orders(&stack, "NO", 1, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !stack.output().contains("granular scopes") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no invalid_scope explanation:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(invoices(&stack.sandbox.documents().await).is_empty());
    assert!(stack.dead_letters().await.is_empty(), "held, not dropped");
    drop(stack);

    // An app made before March 2026 may keep the broad scope, when configured to.
    let sandbox = Sandbox::start().await;
    sandbox
        .settings(serde_json::json!({"app_kind": "broad"}))
        .await;
    let stack = Stack::start_with(sandbox, &["--xero-legacy-scopes"]).await;
    paid_orders(&stack, "OLD", 3, 3).await;
    stack
        .wait_docs("broad app: paid", T, |d| {
            let inv = invoices(d);
            inv.len() == 3 && inv.iter().all(|i| i["Status"] == "PAID")
        })
        .await;
}

/// The writer's egress (`xero_client_egress_bytes_total`) and the sandbox's count of the bytes
/// it sent agree to the byte; the app's month in RATE_BUDGET holds the same sum; a small
/// allowance is alerted on once at 80 % and once at 100 %, and work goes on past it.
#[tokio::test]
async fn egress_is_counted_to_the_byte_and_alerted_once_per_threshold() {
    let stack = Stack::start(&["--egress-allowance", "2KB"]).await;
    let tenant = stack.sandbox.tenant.clone();
    paid_orders(&stack, "EG", 30, 12).await;
    stack
        .wait_docs("paid", T, |d| {
            let inv = invoices(d);
            inv.len() == 30 && inv.iter().all(|i| i["Status"] == "PAID")
        })
        .await;
    // Both counts only grow; they agree once no call is in flight (bounded).
    let label = format!("tenant=\"{tenant}\"");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (ours, theirs) = loop {
        let ours = metric_sum(
            &stack.metrics().await,
            "xero_client_egress_bytes_total",
            &label,
        );
        let theirs = stack.sandbox.counters().await["egress_bytes"][&tenant]
            .as_u64()
            .unwrap_or(0);
        if (ours == theirs && ours > 0) || tokio::time::Instant::now() >= deadline {
            break (ours, theirs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ours, theirs, "writer and sandbox disagree on egress");
    println!(
        "{ours} egress bytes for 30 paid orders ({} per order)",
        ours / 30
    );
    // The app's month, shared in KV (flushed every 5 s).
    let kv = stack.js.get_key_value("xero_rate_budget").await.unwrap();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let app = ledgerline_xero_client::egress::app_of("ledgerline-sandbox");
    let key = format!("egress.{app}.{month}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let stored = loop {
        let v: serde_json::Value = match kv.get(&key).await {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap(),
            _ => serde_json::Value::Null,
        };
        let bytes = v["bytes"].as_u64().unwrap_or(0);
        if bytes >= ours || tokio::time::Instant::now() >= deadline {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let app_bytes = stack.sandbox.counters().await["egress_app_bytes"]["ledgerline-sandbox"]
        .as_u64()
        .unwrap();
    assert_eq!(stored, app_bytes, "the app's month in KV");
    let alerts: Vec<_> = stack
        .usage_alerts()
        .await
        .into_iter()
        .filter(|a| a.kind == XeroUsageKind::MonthEgress as i32)
        .collect();
    let percents: Vec<u32> = alerts.iter().map(|a| a.percent).collect();
    assert_eq!(
        percents.iter().filter(|p| **p == 80).count(),
        1,
        "{alerts:?}"
    );
    assert_eq!(
        percents.iter().filter(|p| **p == 100).count(),
        1,
        "{alerts:?}"
    );
    assert!(alerts.iter().all(|a| a.allowance == 2_000 && !a.held));
    assert!(
        alerts
            .iter()
            .all(|a| a.app == app && a.tenant_id.is_empty())
    );
}

/// The Starter tier's 1,000 calls a day, at a time scale (a day lasts 60 s, room for the
/// writer to spend them on a busy machine): work is held at the
/// limit (no 429), the 80 % and 100 % alerts fire once each, and the rest is written when the
/// window resets. Nothing is lost.
#[tokio::test]
async fn a_starter_day_holds_work_at_the_limit_and_resumes_with_the_next_window() {
    const SCALE: f64 = 1440.0;
    let sandbox = Sandbox::start().await;
    sandbox
        .settings(serde_json::json!({
            "time_scale": SCALE,
            "day_limit": 1_005,
            "access_token_secs": (3600.0 * SCALE) as u64,
            "idempotency_secs": (600.0 * SCALE) as u64,
        }))
        .await;
    let stack = Stack::start_with(
        sandbox,
        &[
            "--xero-tier",
            "starter",
            "--time-scale",
            &SCALE.to_string(),
            "--batch-size",
            "1",
        ],
    )
    .await;
    // One returning customer, one call an order: more orders than the day's calls.
    let n = 1_100;
    for i in 0..n {
        let o = simple(&format!("ST-{i:04}"), "starter@example.com");
        stack
            .publish(&event(&o, OrderEventType::Created, &format!("st-{i}")))
            .await;
    }
    // Held: the day's 100 % alert, while orders still wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let full = loop {
        let alerts = stack.usage_alerts().await;
        if let Some(a) = alerts.iter().find(|a| a.percent == 100) {
            break a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 100 % alert: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(full.held);
    assert_eq!(full.allowance, 1_000);
    let at_limit = invoices(&stack.sandbox.documents().await).len();
    assert!(at_limit < n, "{at_limit} invoiced at the limit");
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("xero_client_day_limit_holds_total"),
        "the hold is counted"
    );
    // Resumed after the window: everything is written.
    stack
        .wait_docs(
            "all invoiced after the window",
            Duration::from_secs(90),
            |d| invoices(d).len() == n,
        )
        .await;
    let counters = stack.sandbox.counters().await;
    assert_eq!(counters["throttled"], 0, "{counters}");
    assert!(stack.dead_letters().await.is_empty());
    let day: Vec<u32> = stack
        .usage_alerts()
        .await
        .iter()
        .filter(|a| a.kind == XeroUsageKind::DayCalls as i32)
        .map(|a| a.percent)
        .collect();
    assert_eq!(day, vec![80, 100], "each once, in order");
    println!(
        "{at_limit} of {n} orders invoiced when the day's calls ran out; the rest after the window"
    );
}

/// With a hard egress cap, calls are held once the month's egress reaches it: nothing is
/// written past it, nothing is dead-lettered, the orders wait in the stream.
#[tokio::test]
async fn the_egress_cap_holds_work_and_drops_nothing() {
    let stack = Stack::start(&["--egress-cap", "1KB"]).await;
    paid_orders(&stack, "CAP", 5, 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !stack.output().contains("egress cap") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hold at the cap:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = stack.sandbox.requests().await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.sandbox.requests().await.len(),
        calls,
        "no call while held"
    );
    assert!(invoices(&stack.sandbox.documents().await).len() < 5);
    assert!(stack.dead_letters().await.is_empty());
    let metrics = stack.metrics().await;
    assert!(metrics.contains("xero_client_egress_holds_total"));
}
