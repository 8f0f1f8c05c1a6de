//! Pulling batches from a tenant's consumer, keeping messages alive while they are worked on,
//! and when a message is tried again.

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits for the first message, then lingers up to `linger` for more (see [`linger`]), taking
/// at most `max`.
pub(crate) async fn pull_batch(
    consumer: &PullConsumer,
    max: usize,
    linger: Duration,
    shutdown: &CancellationToken,
) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    let first = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut first = std::pin::pin!(first);
    loop {
        tokio::select! {
            m = first.next() => match m {
                Some(Ok(m)) => out.push(m),
                Some(Err(e)) => return if out.is_empty() { Err(e.to_string()) } else { Ok(out) },
                None => break,
            },
            _ = shutdown.cancelled() => {
                for m in out { let _ = m.ack_with(AckKind::Nak(None)).await; }
                return Ok(vec![]);
            }
        }
    }
    if out.is_empty() || max <= 1 {
        return Ok(out);
    }
    let more = consumer
        .batch()
        .max_messages(max - 1)
        .expires(linger.max(Duration::from_millis(10)))
        .messages()
        .await;
    if let Ok(more) = more {
        let mut more = std::pin::pin!(more);
        while let Some(Ok(m)) = more.next().await {
            out.push(m);
        }
    }
    Ok(out)
}

/// Reports the tenant's consumer lag (events not yet delivered, and delivered but unacked).
pub(crate) async fn report_lag(
    mut consumer: PullConsumer,
    tenant: String,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Ok(info) = consumer.info().await {
            metrics::gauge!("xero_writer_consumer_pending", "tenant" => tenant.clone())
                .set(info.num_pending as f64);
            metrics::gauge!("xero_writer_consumer_ack_pending", "tenant" => tenant.clone())
                .set(info.num_ack_pending as f64);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// KV reads/writes and fact publishes in flight at once.
pub(crate) const KV_PARALLEL: usize = 64;

pub(crate) fn nak_delay(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 6) as u32 - 1;
    Duration::from_millis(500 * 2u64.pow(exp)).min(Duration::from_secs(30))
}

/// How often messages being worked on tell JetStream so. The consumer has a BackOff list,
/// which replaces its ack_wait: a first delivery is redelivered 10 s after its last ack or
/// in-progress ack (see `ledgerline_contract::consumers::writer_orders`), so this stays well
/// under that.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(3);

/// Sends an in-progress ack for each of `msgs()` every [`KEEPALIVE`] until aborted: for a
/// batch in progress, and for held backfill.
pub(crate) fn keep_alive(
    msgs: impl Fn() -> Vec<Message> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEPALIVE).await;
            for m in &msgs() {
                let _ = m.ack_with(AckKind::Progress).await;
            }
        }
    })
}

/// How long a pull lingers for more events, and how many it takes: 30 ms and `max` while the
/// budget is on pace (latency matters); off pace, until the windows have renewed enough for
/// the next call to be on pace again (`Budget::pace_wait`), at most `max_linger`, and
/// [`OFF_PACE_GROWTH`] times as many events, so each call carries as many orders as it can.
pub(crate) fn linger(
    budget: &ledgerline_xero_client::budget::Budget,
    max: usize,
    max_linger: Duration,
) -> (usize, Duration) {
    const ON_PACE: Duration = Duration::from_millis(30);
    match budget.pace_wait() {
        None => (max, ON_PACE),
        Some(wait) => (
            max * OFF_PACE_GROWTH,
            wait.clamp(ON_PACE, max_linger.max(ON_PACE)),
        ),
    }
}

/// How many times more events a pull takes while the budget is off pace: requests still carry
/// at most the batch size of documents each.
pub(crate) const OFF_PACE_GROWTH: usize = 5;
