//! Benchmark: from an accepted webhook (webhook-ingest answered 2xx) to the writer's "invoice
//! created" fact (Xero confirmed the invoice), through the whole pipeline, at 50 orders/s
//! against an unthrottled sandbox. Release build, prints the figures:
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo nextest run --release -p ledgerline-tests --run-ignored only bench_webhook --no-capture
//! ```

use clarity_sim::event::sign_event;
use clarity_sim::generate::{GenConfig, Generator};
use clarity_sim::model::EventType;
use futures::StreamExt as _;
use ledgerline_contract::v1::{XeroDocumentKind, XeroFact, XeroVerb};
use ledgerline_demo::{DEMO_SECRET, Options, Stack};
use ledgerline_platform::standard_webhooks::{Secret, unix_now};
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_webhook_to_invoice_at_50_per_second() {
    let n: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut opts = Options::small(n);
    opts.sandbox_args = "--minute-limit 1000000 --day-limit 100000000 --concurrent-limit 100 \
                         --app-minute-limit 10000000"
        .into();
    opts.writer_env = vec![
        "XERO_MINUTE_LIMIT=1000000".into(),
        "XERO_DAY_LIMIT=100000000".into(),
    ];
    let stack = Stack::start(&opts).await.unwrap();
    assert!(stack.missing.is_empty(), "not built: {:?}", stack.missing);

    // Each order's first event, as the store sends it.
    let events: Vec<_> = Generator::new(7, GenConfig::new("main", n))
        .events()
        .into_iter()
        .filter(|e| e.event_type == EventType::SalesOrderCreated)
        .collect();
    assert_eq!(events.len(), n);

    let nats = async_nats::connect(&stack.nats_url).await.unwrap();
    let subject = ledgerline_contract::subjects::xero_facts(
        "*",
        XeroDocumentKind::Invoice,
        XeroVerb::Created,
    );
    let mut facts = nats.subscribe(subject).await.unwrap();
    nats.flush().await.unwrap();

    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let target = format!("{}/webhooks/clarity/main", stack.ingest.base_url());
    let feeder = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let http = ledgerline_platform::tls::http_client("test").unwrap();
            let secret = Secret::parse(DEMO_SECRET).unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut sends = Vec::new();
            for ev in events {
                tick.tick().await;
                let (http, secret, target, accepted) = (
                    http.clone(),
                    secret.clone(),
                    target.clone(),
                    accepted.clone(),
                );
                // Each delivery on its own task, so a slow answer never delays the next one.
                sends.push(tokio::spawn(async move {
                    let key = ev.partition_key.trim_start_matches("order:").to_owned();
                    let mut req = http.post(&target).body(ev.body.clone());
                    for (name, value) in sign_event(&secret, &ev, unix_now()) {
                        req = req.header(name, value);
                    }
                    let r = req.send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    accepted.lock().unwrap().insert(key, Instant::now());
                }));
            }
            for s in sends {
                s.await.unwrap();
            }
        })
    };

    let mut latencies = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.len() < n && Instant::now() < deadline {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), facts.next()).await else {
            break;
        };
        let seen = Instant::now();
        let fact = XeroFact::decode(m.payload.as_ref()).unwrap();
        let key = fact
            .order_key
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        // The fact can beat the webhook's 2xx to this process; count that as zero.
        let at = accepted.lock().unwrap().get(&key).copied();
        latencies.push(at.map_or(Duration::ZERO, |t| seen.saturating_duration_since(t)));
    }
    feeder.await.unwrap();
    assert_eq!(
        latencies.len(),
        n,
        "every order invoiced within the deadline"
    );
    latencies.sort();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)].as_millis();
    println!(
        "BENCH_WEBHOOK_TO_INVOICE orders={n} rate=50/s p50_ms={} p90_ms={} p99_ms={} max_ms={}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies[n - 1].as_millis()
    );
    let rss = |p: &ledgerline_testkit::ServiceProcess| {
        p.peak_rss_kib()
            .map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
    };
    let (normalizer, writer) = (stack.normalizer.as_ref(), stack.writer.as_ref());
    println!(
        "BENCH_PEAK_RSS_MIB webhook-ingest={} normalizer={} xero-writer={} xero-sandbox={}",
        rss(&stack.ingest),
        normalizer.map_or("?".to_owned(), rss),
        writer.map_or("?".to_owned(), rss),
        rss(&stack.sandbox),
    );
}
