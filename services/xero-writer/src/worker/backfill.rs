//! The backfill lane: events of orders that last changed long ago (history at go-live, an
//! operator's resync) are converged by a second worker whose Xero calls spend only backfill's
//! share of the tenant's windows ([`ledgerline_xero_client::budget::as_backfill`]). While that share is spent
//! the lane waits for the window to reset, its messages kept alive with in-progress acks (no
//! redelivery, so no step towards `max_deliver`); the tenant's main worker meanwhile goes on
//! pulling and converging live events.

use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::work::{Decoded, decode};
use async_nats::jetstream::{AckKind, Message};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// True if `msg` is backfill: its order (or refund) last changed more than `age` before `now`.
/// Zero `age`, unreadable events and unparsable times are live (never held by the cap).
pub(super) fn is_backfill(
    msg: &Message,
    age: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    if age.is_zero() {
        return false;
    }
    let when = match decode(msg) {
        Ok(Decoded::Order(e)) => e.order.map(|o| {
            if o.updated_at.is_empty() {
                o.created_at
            } else {
                o.updated_at
            }
        }),
        Ok(Decoded::Refund(r)) => r.refund.map(|r| r.refunded_at),
        Err(_) => None,
    };
    older_than(when.as_deref(), age, now)
}

fn older_than(when: Option<&str>, age: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(t) = when.and_then(|w| chrono::DateTime::parse_from_rfc3339(w).ok()) else {
        return false;
    };
    chrono::Duration::from_std(age).is_ok_and(|age| t.with_timezone(&chrono::Utc) < now - age)
}

#[derive(Default)]
struct Queue {
    msgs: VecDeque<Message>,
    org: Option<Arc<OrgSettings>>,
}

/// A tenant's backfill lane (a task converging queued backfill events).
pub(super) struct Lane {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    tenant: String,
    task: tokio::task::JoinHandle<()>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Lane {
    /// Starts the lane; `worker` is its own worker (same client, so the same budget).
    pub(super) fn start(worker: TenantWorker, shutdown: CancellationToken) -> Self {
        let queue: Arc<Mutex<Queue>> = Default::default();
        let wake = Arc::new(Notify::new());
        let tenant = worker.tenant().to_owned();
        let keepalive = {
            let queue = queue.clone();
            super::keep_alive(move || {
                let q = queue.lock().unwrap_or_else(|e| e.into_inner());
                q.msgs.iter().cloned().collect()
            })
        };
        let task = tokio::spawn(run(worker, queue.clone(), wake.clone(), shutdown));
        Self {
            queue,
            wake,
            tenant,
            task,
            keepalive,
        }
    }

    /// Queues backfill events (the org settings are the main worker's current copy).
    pub(super) fn push(&self, msgs: Vec<Message>, org: Option<Arc<OrgSettings>>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.msgs.extend(msgs);
        if org.is_some() {
            q.org = org;
        }
        metrics::gauge!("xero_writer_backfill_queued", "tenant" => self.tenant.clone())
            .set(q.msgs.len() as f64);
        drop(q);
        self.wake.notify_one();
    }

    /// Waits for the lane's batch in progress; queued events go back to JetStream.
    pub(super) async fn finish(self) {
        let _ = self.task.await;
        self.keepalive.abort();
        let left: Vec<Message> = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.msgs.drain(..).collect()
        };
        for m in left {
            let _ = m.ack_with(AckKind::Nak(None)).await;
        }
    }
}

async fn run(
    mut worker: TenantWorker,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let tenant = worker.tenant().to_owned();
    let max = worker.shared.config.batch_size * 4;
    while !shutdown.is_cancelled() {
        let blocked = worker.client.breaker.is_open()
            || worker.shared.is_paused(&tenant)
            || !worker.client.is_connected();
        let batch: Vec<Message> = if blocked {
            vec![]
        } else {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(org) = &q.org {
                worker.org = Some(org.clone());
            }
            let n = q.msgs.len().min(max);
            let batch = q.msgs.drain(..n).collect();
            metrics::gauge!("xero_writer_backfill_queued", "tenant" => tenant.clone())
                .set(q.msgs.len() as f64);
            batch
        };
        if batch.is_empty() || worker.org.is_none() {
            if !batch.is_empty() {
                // No settings yet (cannot happen: the main worker reads them first).
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                for m in batch.into_iter().rev() {
                    q.msgs.push_front(m);
                }
            }
            let idle = if blocked {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        ledgerline_xero_client::budget::as_backfill(worker.process(batch)).await;
    }
}

impl TenantWorker {
    /// The backfill lane, unless backfill is uncapped (share 1) or nothing counts as backfill.
    pub(super) fn backfill_lane(&self, shutdown: &CancellationToken) -> Option<Lane> {
        let cfg = &self.shared.config;
        if cfg.backfill_age.is_zero() || cfg.backfill_day_share >= 1.0 {
            return None;
        }
        let worker = TenantWorker::new(
            self.shared.clone(),
            self.client.clone(),
            self.desk.clone(),
            self.max_deliver,
        );
        Some(Lane::start(worker, shutdown.clone()))
    }

    /// Hands the backfill events of a pulled batch to the lane; returns the live ones.
    pub(super) fn route_backfill(&self, msgs: Vec<Message>, lane: Option<&Lane>) -> Vec<Message> {
        let Some(lane) = lane else {
            return msgs;
        };
        let (age, now) = (self.shared.config.backfill_age, chrono::Utc::now());
        let (back, live): (Vec<Message>, Vec<Message>) =
            msgs.into_iter().partition(|m| is_backfill(m, age, now));
        if !back.is_empty() {
            metrics::counter!("xero_writer_backfill_events_total", "tenant" => self.tenant().to_owned())
                .increment(back.len() as u64);
            lane.push(back, self.org.clone());
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_is_what_last_changed_before_the_age() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let day = Duration::from_secs(86_400);
        assert!(older_than(Some("2026-11-20T10:00:00+13:00"), day, now));
        assert!(!older_than(Some("2026-11-26T06:00:00Z"), day, now));
        // Offsets count: 17:00 the day before in +13:00 is 04:00 UTC, just over a day ago.
        assert!(older_than(Some("2026-11-26T17:59:59+13:00"), day, now));
        assert!(!older_than(Some("not a time"), day, now));
        assert!(!older_than(None, day, now));
    }
}
