//! Backfill (orders that last changed long ago) spends at most its share of the day window;
//! live orders are written meanwhile; held backfill resumes when the window resets.

use crate::helpers::*;
use ledgerline_contract::v1::OrderEventType;
use std::time::Duration;

/// A scaled day of 30 s (a minute lasts 21 ms).
const SCALE: f64 = 2880.0;
/// The writer's day limit; backfill may use half of it.
const DAY: u32 = 40;

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.starts_with(name)
                && (l.len() == name.len() || l[name.len()..].starts_with(['{', ' ']))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A writer and sandbox with windows divided by `scale` and a day of `day` calls.
async fn scaled(scale: f64, day: u32) -> Stack {
    let sandbox = Sandbox::start().await;
    // A little headroom over the writer's limit: the two day windows start a network hop
    // apart, and at this scale the writer's dead zone (2 % of a minute) is about a millisecond.
    sandbox
        .settings(serde_json::json!({
            "time_scale": scale,
            "day_limit": day + 5,
            "access_token_secs": (3600.0 * scale) as u64,
            "idempotency_secs": (600.0 * scale) as u64,
        }))
        .await;
    Stack::start_with(
        sandbox,
        &[
            "--time-scale",
            &scale.to_string(),
            "--day-limit",
            &day.to_string(),
            "--backfill-age",
            "24h",
            "--backfill-day-share",
            "0.5",
            "--batch-size",
            "1",
        ],
    )
    .await
}

/// Publishes `n` orders of one old customer, last changed in September.
async fn publish_backlog(stack: &Stack, n: usize) {
    let old_buyer = customer("Old", "Buyer", "old@example.com");
    for i in 0..n {
        let mut o = simple(&format!("OLD-{i}"), "old@example.com");
        o.customer = Some(old_buyer.clone());
        o.created_at = "2026-09-01T10:00:00+12:00".into();
        o.updated_at = "2026-09-02T10:00:00+12:00".into();
        stack
            .publish(&event(&o, OrderEventType::Updated, &format!("old-{i}")))
            .await;
    }
}

/// Deliveries beyond the first of each event, once the writer's ORDERS consumer has nothing
/// pending or unacked (bounded). Every event of the test's stream passes its filter, so each
/// delivery past the stream's last sequence was a redelivery (`num_redelivered` only counts
/// those still unacked).
async fn redeliveries(stack: &Stack) -> u64 {
    let info = settled_consumer(stack).await;
    info.delivered.consumer_sequence - info.delivered.stream_sequence
}

async fn settled_consumer(stack: &Stack) -> async_nats::jetstream::consumer::Info {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut consumer = stack
            .js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                ledgerline_contract::consumers::writer_orders_name(&stack.sandbox.tenant),
                "ORDERS",
            )
            .await
            .unwrap();
        let info = consumer.info().await.unwrap().clone();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            return info;
        }
        assert!(tokio::time::Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn backfill_stops_at_its_share_while_live_orders_are_written_then_resumes() {
    let stack = scaled(SCALE, DAY).await;
    // Uncapped, the backlog (with the settings reads and contacts) would spend the whole day
    // before the live orders behind it in the stream got a call.
    let backlog = 30;
    publish_backlog(&stack, backlog).await;
    let now = chrono::Utc::now().to_rfc3339();
    let live = 4;
    for i in 0..live {
        let mut o = simple(&format!("LIVE-{i}"), "live@example.com");
        o.customer = Some(customer("Live", "Buyer", "live@example.com"));
        o.created_at = now.clone();
        o.updated_at = now.clone();
        stack
            .publish(&event(&o, OrderEventType::Created, &format!("live-{i}")))
            .await;
    }
    let count = |docs: &serde_json::Value, prefix: &str| {
        invoices(docs)
            .iter()
            .filter(|i| {
                i["InvoiceNumber"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    // Live orders are all written while the backfill is held at its share.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let held_with = loop {
        let metrics = stack.metrics().await;
        let docs = stack.sandbox.documents().await;
        if metric(&metrics, "xero_client_background_held") == Some(1.0)
            && count(&docs, "LIVE-") == live
        {
            break docs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backfill never held with the live orders written; invoices: {}\nmetrics:\n{metrics}\nwriter output:\n{}",
            invoices(&docs).len(),
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let held = count(&held_with, "OLD-");
    println!(
        "backfill held after {held} of {backlog} invoices; sandbox counters: {}",
        stack.sandbox.counters().await["calls"]
    );
    // Each backfill invoice took a call, and backfill had DAY / 2 of them: one contact search
    // and one new contact, the rest invoices (one per batch of one).
    assert!(
        held >= (DAY / 2 - 2) as usize && held <= (DAY / 2) as usize,
        "backfill invoices while held: {held}"
    );
    let metrics = stack.metrics().await;
    assert_eq!(
        metric(&metrics, "xero_client_background_day_remaining"),
        Some(0.0),
        "{metrics}"
    );
    assert!(metric(&metrics, "xero_client_background_holds_total").unwrap_or(0.0) >= 1.0);
    assert!(
        stack
            .output()
            .contains("Backfill's share of the daily Xero calls is spent"),
        "{}",
        stack.output()
    );

    // The day window resets (30 s scaled): the backfill goes on and everything ties out.
    let docs = stack
        .wait_docs("the whole backlog", Duration::from_secs(90), |d| {
            count(d, "OLD-") == backlog && count(d, "LIVE-") == live
        })
        .await;
    for inv in invoices(&docs) {
        assert_eq!(
            d(&inv["Total"]),
            rust_decimal::Decimal::new(2875, 2),
            "{inv}"
        );
        assert_eq!(inv["Status"], "AUTHORISED");
    }
    for i in 0..backlog {
        let entry = stack
            .ledger(&format!("id-OLD-{i}"))
            .await
            .expect("ledger entry");
        assert!(
            !entry["invoice_id"].as_str().unwrap_or_default().is_empty(),
            "{entry}"
        );
    }
    let counters = stack.sandbox.counters().await;
    assert_eq!(counters["throttled"], 0, "{counters}");
    assert!(stack.dead_letters().await.is_empty());
    let created = stack
        .facts()
        .await
        .iter()
        .filter(|f| f.kind() == ledgerline_contract::v1::XeroDocumentKind::Invoice)
        .filter(|f| f.verb() == ledgerline_contract::v1::XeroVerb::Created)
        .count();
    assert_eq!(created, backlog + live);
    // All acked, none redelivered.
    assert_eq!(redeliveries(&stack).await, 0);
}

/// A hold longer than every redelivery delay of the consumer's BackOff up to 30 s (and its
/// nominal ack_wait, 60 s): held events are kept alive with in-progress acks, so none is
/// redelivered (or gets nearer to max_deliver) before the reset.
#[tokio::test]
async fn held_backfill_outlasts_ack_wait_without_redelivery() {
    // A scaled day of 75 s.
    let stack = scaled(1152.0, 20).await;
    let backlog = 16;
    publish_backlog(&stack, backlog).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&stack.metrics().await, "xero_client_background_held") != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never held:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held_at = tokio::time::Instant::now();
    let docs = stack
        .wait_docs(
            "the backlog after the reset",
            Duration::from_secs(120),
            |d| invoices(d).len() == backlog,
        )
        .await;
    assert!(
        held_at.elapsed() > Duration::from_secs(60),
        "held only {:?}",
        held_at.elapsed()
    );
    assert_eq!(invoices(&docs).len(), backlog);
    assert_eq!(stack.sandbox.counters().await["throttled"], 0);
    assert!(stack.dead_letters().await.is_empty());
    assert_eq!(redeliveries(&stack).await, 0);
}
