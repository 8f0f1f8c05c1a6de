//! An example subscriber: revenue per sales channel and currency, from Ledgerline's canonical
//! order events on `ORDERS`. It shows what docs/subscribers.md describes:
//!
//! - its own durable consumer on `ORDERS`, named after itself, filtered to one store;
//! - one record per order in its own KV bucket, replaced only by a higher version (events can
//!   arrive twice and out of order), written before the message is acknowledged;
//! - `--replay`: its consumer and bucket made again, history read from the start;
//! - `/healthz`, `/readyz`, `/metrics`, and its result at `/revenue`.

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, kv};
use futures::StreamExt;
use ledgerline_contract::v1::{OrderEvent, OrderStatus};
use ledgerline_contract::{Schema, headers, streams, subjects};
use prost::Message as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "revenue-by-channel", version, about)]
pub struct Config {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The store whose orders to count.
    #[arg(long, env = "STORE", default_value = "main")]
    pub store: String,
    /// HTTP address for /healthz, /metrics and /revenue.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8099")]
    pub listen: SocketAddr,
    /// The tracking category that names the sales channel.
    #[arg(long, env = "CHANNEL_CATEGORY", default_value = "Sales Channel")]
    pub channel_category: String,
    /// Forget everything and read the store's history again from the start.
    #[arg(long)]
    pub replay: bool,
}

/// This subscriber's durable consumer: named after it, never after a Ledgerline service.
pub const CONSUMER: &str = "example-revenue-by-channel";
/// Its own KV bucket.
pub const BUCKET: &str = "example_revenue_by_channel";

/// What it keeps per order: the latest version it has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Order number.
    pub number: String,
    /// The version this record is of.
    pub version: u64,
    /// Sales channel (empty when the order has none).
    pub channel: String,
    /// ISO 4217.
    pub currency: String,
    /// The order's total.
    pub total: Decimal,
    /// Cancelled: counts nothing.
    pub cancelled: bool,
}

#[derive(Default)]
struct Counters {
    applied: AtomicU64,
    stale: AtomicU64,
    skipped: AtomicU64,
}

/// Runs until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(cfg.nats_url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(streams::ORDERS.name)
        .await
        .context("ORDERS is made by Ledgerline's normalizer: start Ledgerline first")?;
    if cfg.replay {
        // Made again below: the consumer from the first event, the bucket empty.
        let _ = stream.delete_consumer(CONSUMER).await;
        let _ = js.delete_key_value(BUCKET).await;
    }
    let bucket = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            description: "Example subscriber: one record per order".into(),
            history: 1,
            ..Default::default()
        })
        .await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                description: Some("Example subscriber: revenue by sales channel".into()),
                filter_subject: subjects::orders_store(&cfg.store),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: 10,
                ..Default::default()
            },
        )
        .await?;
    let counters = Arc::new(Counters::default());
    let http = tokio::net::TcpListener::bind(cfg.listen).await?;
    tracing::info!(addr = %http.local_addr()?, store = %cfg.store, "revenue-by-channel listening.");
    let app = router(bucket.clone(), counters.clone());
    let server = tokio::spawn(async move { axum::serve(http, app).await });
    let mut messages = consumer.messages().await?;
    let stop = shutdown();
    tokio::pin!(stop);
    loop {
        let m = tokio::select! {
            m = messages.next() => m,
            _ = &mut stop => break,
        };
        let Some(m) = m else { break };
        let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
        match handle(&bucket, &cfg, &m).await {
            Ok(outcome) => {
                match outcome {
                    Outcome::Applied => &counters.applied,
                    Outcome::Stale => &counters.stale,
                    Outcome::Skipped => &counters.skipped,
                }
                .fetch_add(1, Ordering::Relaxed);
                // Acked only now: the record is in the bucket (its PubAck came back).
                m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            Err(Failure::Retry(e)) => {
                tracing::warn!(error = %e, "Not stored; retrying in 5 s.");
                let _ = m
                    .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
            Err(Failure::Poison(e)) => {
                // It will never decode: redelivering it helps nobody.
                tracing::error!(error = %e, subject = %m.subject, "Unreadable event; terminated.");
                let _ = m.ack_with(jetstream::AckKind::Term).await;
            }
        }
    }
    server.abort();
    Ok(())
}

enum Outcome {
    Applied,
    Stale,
    Skipped,
}

enum Failure {
    Retry(String),
    Poison(String),
}

async fn handle(
    bucket: &kv::Store,
    cfg: &Config,
    m: &jetstream::Message,
) -> Result<Outcome, Failure> {
    let schema = m
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    // Refunds (RefundEvent) change no order total; unknown schemas are a newer Ledgerline's.
    if schema != OrderEvent::NAME {
        return Ok(Outcome::Skipped);
    }
    let e = OrderEvent::decode(m.payload.as_ref()).map_err(|e| Failure::Poison(e.to_string()))?;
    let Some(o) = e.order else {
        return Err(Failure::Poison("an OrderEvent without its order".into()));
    };
    let total: Decimal = o
        .totals
        .as_ref()
        .and_then(|t| t.total.as_ref())
        .map(|t| t.amount.parse())
        .transpose()
        .map_err(|e: rust_decimal::Error| Failure::Poison(e.to_string()))?
        .unwrap_or_default();
    let record = OrderRecord {
        number: o.number.clone(),
        version: o.version,
        channel: o
            .tracking
            .get(&cfg.channel_category)
            .cloned()
            .unwrap_or_default(),
        currency: o.currency.clone(),
        total,
        cancelled: o.status() == OrderStatus::Cancelled,
    };
    let key = format!("{}.{}", subjects::token(&cfg.store), subjects::token(&o.id));
    let value = serde_json::to_vec(&record).map_err(|e| Failure::Retry(e.to_string()))?;
    // Compare-and-set: a higher version replaces a lower one, never the other way round, even
    // with several replicas.
    loop {
        let current = bucket
            .entry(&key)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let written = match &current {
            Some(entry) if !entry.value.is_empty() => {
                let old: OrderRecord = serde_json::from_slice(&entry.value)
                    .map_err(|e| Failure::Retry(e.to_string()))?;
                if old.version >= record.version {
                    return Ok(Outcome::Stale);
                }
                bucket
                    .update(&key, value.clone().into(), entry.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            _ => bucket
                .create(&key, value.clone().into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => return Ok(Outcome::Applied),
            // Someone else wrote first: read again and compare.
            Err(e) if e.contains("wrong last sequence") || e.contains("exist") => continue,
            Err(e) => return Err(Failure::Retry(e)),
        }
    }
}

/// Every record, by key.
pub async fn records(bucket: &kv::Store) -> anyhow::Result<BTreeMap<String, OrderRecord>> {
    let mut out = BTreeMap::new();
    let mut keys = bucket.keys().await?;
    while let Some(k) = keys.next().await {
        let k = k?;
        if let Some(v) = bucket.get(&k).await? {
            out.insert(k, serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}

/// Revenue: channel → currency → total of orders not cancelled.
pub fn revenue(
    records: &BTreeMap<String, OrderRecord>,
) -> BTreeMap<String, BTreeMap<String, Decimal>> {
    let mut out: BTreeMap<String, BTreeMap<String, Decimal>> = BTreeMap::new();
    for r in records.values().filter(|r| !r.cancelled) {
        *out.entry(r.channel.clone())
            .or_default()
            .entry(r.currency.clone())
            .or_default() += r.total;
    }
    out
}

fn router(bucket: kv::Store, counters: Arc<Counters>) -> axum::Router {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let b = bucket.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Ready once its consumer and bucket exist (they are made before this serves).
        .route("/readyz", get(|| async { "ready" }))
        .route(
            "/revenue",
            get(move || {
                let b = b.clone();
                async move {
                    match records(&b).await {
                        Ok(r) => axum::Json(serde_json::json!({
                            "orders": r.len(),
                            "revenue": revenue(&r),
                        }))
                        .into_response(),
                        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                            .into_response(),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let c = counters.clone();
                async move {
                    let line = |name: &str, help: &str, v: &AtomicU64| {
                        format!(
                            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                            v.load(Ordering::Relaxed)
                        )
                    };
                    [
                        line(
                            "example_events_applied_total",
                            "Events that replaced an order's record.",
                            &c.applied,
                        ),
                        line(
                            "example_events_stale_total",
                            "Events older than the record (duplicates, out of order).",
                            &c.stale,
                        ),
                        line(
                            "example_events_skipped_total",
                            "Events of other schemas (refunds, newer types).",
                            &c.skipped,
                        ),
                    ]
                    .concat()
                }
            }),
        )
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
