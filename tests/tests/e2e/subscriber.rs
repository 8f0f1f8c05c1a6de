//! The example subscriber (`examples/revenue-by-channel`) beside the whole pipeline: 200 orders
//! with duplicates and reordering, the subscriber killed (SIGKILL) and started again mid-load,
//! then replayed from the start: its record of every order equals the store's truth.

use ledgerline_demo::{GroundTruth, Options, Stack};
use ledgerline_testkit::{ServiceProcess, free_port, workspace_binary};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn start(nats: &str, addr: &str, replay: bool) -> ServiceProcess {
    let args: &[&str] = if replay { &["--replay"] } else { &[] };
    let mut p = ServiceProcess::spawn_at(
        &workspace_binary("revenue-by-channel"),
        addr,
        args,
        &[("NATS_URL", nats)],
    );
    p.wait_ready(Duration::from_secs(60));
    p
}

/// The subscriber's records by order number: (version, total, cancelled).
async fn records(nats: &str) -> BTreeMap<String, (u64, Decimal, bool)> {
    let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
    let kv = js.get_key_value(revenue_by_channel::BUCKET).await.unwrap();
    revenue_by_channel::records(&kv)
        .await
        .unwrap()
        .into_values()
        .map(|r| (r.number, (r.version, r.total, r.cancelled)))
        .collect()
}

/// Waits until the subscriber has taken in every event on ORDERS (nothing pending or in flight
/// on its consumer): a record can match the truth while a later version is still on its way.
async fn drained(nats: &str) {
    let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c: async_nats::jetstream::consumer::PullConsumer = js
            .get_consumer_from_stream(
                revenue_by_channel::CONSUMER,
                ledgerline_contract::streams::ORDERS.name,
            )
            .await
            .unwrap();
        let info = c.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the subscriber never caught up: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the subscriber holds the truth for every order and has taken in every event;
/// returns what it holds.
async fn until_true(nats: &str, truth: &GroundTruth) -> BTreeMap<String, (u64, Decimal, bool)> {
    let want: BTreeMap<String, (Decimal, bool)> = truth
        .orders
        .iter()
        .map(|o| (o.number.clone(), (o.totals.total, o.voided)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have = records(nats).await;
        let seen: BTreeMap<String, (Decimal, bool)> = have
            .iter()
            .map(|(n, (_, total, cancelled))| (n.clone(), (*total, *cancelled)))
            .collect();
        if seen == want {
            drained(nats).await;
            return records(nats).await;
        }
        if Instant::now() > deadline {
            let wrong: Vec<_> = want
                .iter()
                .filter(|(n, w)| seen.get(*n) != Some(w))
                .take(10)
                .map(|(n, w)| format!("{n}: truth {w:?}, subscriber {:?}", seen.get(n)))
                .collect();
            panic!(
                "{} orders, {} held; wrong: {wrong:#?}",
                want.len(),
                seen.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_subscriber_ends_with_the_stores_truth_for_every_order() {
    let opts = Options::small(200).at_time_scale(20);
    let stack = Stack::start(&opts).await.unwrap();
    let nats = stack.nats_url.clone();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sub = start(&nats, &addr, false);

    // Killed mid-load: what it had acked was already in its bucket; the rest comes again.
    let sender = tokio::spawn(stack.sender(&opts));
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(&nats).await.len() < 50 {
        assert!(Instant::now() < deadline, "the subscriber never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sub.kill();
    let sub = start(&nats, &addr, false);
    let truth = sender.await.unwrap().unwrap();
    let first = until_true(&nats, &truth).await;

    // Its API agrees with its records: revenue per channel adds up to the store's totals.
    let revenue: Value = reqwest::get(format!("{}/revenue", sub.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut by_currency: BTreeMap<String, Decimal> = BTreeMap::new();
    for channels in revenue["revenue"].as_object().unwrap().values() {
        for (ccy, v) in channels.as_object().unwrap() {
            *by_currency.entry(ccy.clone()).or_default() +=
                v.as_str().unwrap().parse::<Decimal>().unwrap();
        }
    }
    let want: BTreeMap<String, Decimal> = truth
        .per_currency
        .iter()
        .map(|(c, t)| (c.clone(), t.invoiced_total))
        .collect();
    assert_eq!(by_currency, want);
    let metrics = reqwest::get(format!("{}/metrics", sub.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("example_events_stale_total"), "{metrics}");

    // Replayed from the start: the same records.
    drop(sub);
    let _sub = start(&nats, &addr, true);
    let again = until_true(&nats, &truth).await;
    assert_eq!(again, first);
}
