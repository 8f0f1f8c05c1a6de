//! Normalizer benchmark: `cargo bench -p normalizer --bench pipeline` (release build).
//!
//! 1. The pure transform of the contract's example order on one core (target ≥ 20k/s).
//! 2. Against a real nats-server (started by the testkit: `nats-server -js`, file store, default
//!    sync interval): consume → transform → publish through the normalizer's own pipeline and
//!    consumer loop, beside a raw JetStream consume → publish (payload unchanged) of the same
//!    messages with the same loop and concurrency, in the same run.
//!
//! `BENCH_TRANSFORMS` and `BENCH_MESSAGES` change the counts.

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::{self, Context, stream};
use bytes::Bytes;
use ledgerline_contract::{consumers, headers};
use ledgerline_mapping::{Effective, MappingHandle};
use ledgerline_platform::consume::{Outcome, RunConfig};
use ledgerline_platform::publish::Publisher;
use normalizer::Pipeline;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CONCURRENCY: usize = 64;

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn example() -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/inputs/example_sales_order_created.json");
    std::fs::read(p).expect("example order")
}

fn pure_transform(n: u64) {
    let body = example();
    let effective = Effective::defaults();
    // Warm up.
    for _ in 0..1000 {
        std::hint::black_box(
            normalizer::transform::transform(&body, Some("main"), &effective).unwrap(),
        );
    }
    let started = Instant::now();
    let mut events = 0usize;
    for _ in 0..n {
        let out =
            normalizer::transform::transform(std::hint::black_box(&body), Some("main"), &effective)
                .unwrap();
        events += out.len();
        // Encoding is part of the work the service does per event.
        for e in &out {
            std::hint::black_box(e.message.encode());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pure transform (example order, 1 core): {n} raw events in {secs:.2} s = {:.0} raw events/s ({:.0} canonical events/s)",
        n as f64 / secs,
        events as f64 / secs
    );
}

async fn fill_raw(js: &Context, n: u64, body: &[u8]) {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut acks = Vec::with_capacity(512);
    for i in 0..n {
        let id = format!("evt_bench_{i}");
        v["id"] = id.clone().into();
        v["data"]["ID"] = (100_000 + i).into();
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, id.as_str());
        h.insert(headers::WEBHOOK_ID, id.as_str());
        h.insert(headers::CLARITY_STORE, "main");
        let payload = Bytes::from(serde_json::to_vec(&v).unwrap());
        acks.push(
            js.publish_with_headers("raw.clarity.main.sales_order.created", h, payload)
                .await
                .unwrap(),
        );
        if acks.len() == 512 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks {
        a.await.unwrap();
    }
}

/// Runs the platform consumer loop with `handler` until `n` messages were handled.
async fn run_until<F, Fut>(
    client: &async_nats::Client,
    consumer: async_nats::jetstream::consumer::PullConsumer,
    n: u64,
    handler: F,
) -> f64
where
    F: Fn(jetstream::Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    let counted = {
        let done = done.clone();
        move |m: jetstream::Message| {
            let h = handler.clone();
            let done = done.clone();
            async move {
                let o = h(m).await;
                done.fetch_add(1, Ordering::Relaxed);
                o
            }
        }
    };
    let started = Instant::now();
    let task = tokio::spawn(ledgerline_platform::consume::run(
        client.clone(),
        consumer,
        RunConfig {
            name: "bench".into(),
            concurrency: CONCURRENCY,
            pull_expires: Duration::from_secs(1),
        },
        shutdown.clone(),
        counted,
    ));
    while done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = task.await;
    secs
}

async fn with_nats(n: u64) {
    let server = ledgerline_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let spec = consumers::normalizer();
    ledgerline_platform::nats::ensure_topology(
        &js,
        ledgerline_contract::streams::Limits::default(),
        std::slice::from_ref(&spec),
        &[],
    )
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let body = example();
    let t = Instant::now();
    fill_raw(&js, n, &body).await;
    println!(
        "filled RAW with {n} raw events in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Baseline: the same loop, republishing each raw payload as it is.
    let raw = js.get_stream("RAW").await.unwrap();
    let baseline = raw
        .create_consumer(pull::Config {
            durable_name: Some("bench-baseline".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: spec.max_ack_pending,
            ..Default::default()
        })
        .await
        .unwrap();
    let publisher = Publisher::new(js.clone(), Duration::from_secs(10));
    let p = publisher.clone();
    let secs = run_until(&client, baseline, n, move |m| {
        let p = p.clone();
        async move {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::MSG_ID))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            match p
                .publish(
                    "bench.raw".into(),
                    &id,
                    "application/json",
                    "raw",
                    HeaderMap::new(),
                    m.payload.clone(),
                )
                .await
            {
                Ok(_) => Outcome::Ack,
                Err(_) => Outcome::Nak(None),
            }
        }
    })
    .await;
    let baseline_rate = n as f64 / secs;
    println!(
        "raw JetStream consume → publish (payload as is, {CONCURRENCY} in flight): {n} in {secs:.2} s = {baseline_rate:.0} msg/s"
    );

    // The normalizer: transform, publish the order and customer events, ack.
    let durable = raw
        .get_consumer::<pull::Config>(&spec.durable)
        .await
        .unwrap();
    let pipeline = Pipeline::new(
        publisher,
        MappingHandle::fixed(Effective::defaults()),
        vec![Duration::from_secs(1)],
    );
    let secs = run_until(&client, durable, n, move |m| {
        let p = pipeline.clone();
        async move { p.handle_message(m).await }
    })
    .await;
    let rate = n as f64 / secs;
    let mut orders = js.get_stream("ORDERS").await.unwrap();
    let mut customers = js.get_stream("CUSTOMERS").await.unwrap();
    let published = orders.info().await.unwrap().state.messages
        + customers.info().await.unwrap().state.messages;
    println!(
        "normalizer consume → transform → publish ({CONCURRENCY} in flight): {n} raw in {secs:.2} s = {rate:.0} raw events/s, {:.0} canonical events/s ({published} published), {:.0} % of the raw baseline",
        published as f64 / secs,
        100.0 * rate / baseline_rate
    );
    println!(
        "nats-server: testkit defaults (-js, file store in a temp dir, default sync interval), same machine"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    pure_transform(env_count("BENCH_TRANSFORMS", 200_000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(with_nats(env_count("BENCH_MESSAGES", 20_000)));
}
