//! The report's rows in KV (`recon_report`): `r.<store>.<UTC date>.<shard>` holds, as JSON, the
//! rows of the orders placed that UTC day whose id hashes to the shard. A month of 10,000
//! orders a day is 30 x 32 entries, read side by side, instead of 300,000 keys.
//!
//! Rows are queued as views change and written by one task per process, a shard at a time
//! (compare-and-set, so replicas do not lose each other's rows; an older view's row never
//! replaces a newer one). The views are the truth: at start the rows are made again from them,
//! so a crash between a view and its row loses nothing.

use super::row::{Row, Rules};
use crate::view::OrderView;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use ledgerline_contract::subjects;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Shards per store and UTC day.
pub const SHARDS: u32 = 32;

/// One shard's rows: order id → row.
pub type Shard = BTreeMap<String, Row>;

/// Pending rows by shard key, then order id (`None`: remove).
type Pending = HashMap<String, HashMap<String, Option<Row>>>;

/// The rows, and the queue of changes not yet written.
#[derive(Debug, Clone)]
pub struct RowStore {
    kv: kv::Store,
    rules: Arc<Rules>,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

/// FNV-1a: stable across builds and platforms (a shard key must not move).
fn shard_of(order_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in order_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// The shard key of `store`'s order `order_id` placed on UTC `date`.
pub fn shard_key(store: &str, date: chrono::NaiveDate, order_id: &str) -> String {
    day_prefix(store, date) + &format!("{:02}", shard_of(order_id))
}

fn day_prefix(store: &str, date: chrono::NaiveDate) -> String {
    format!("r.{}.{}.", subjects::token(store), date.format("%Y%m%d"))
}

impl RowStore {
    /// Rows in `kv`, caused by `rules`.
    pub fn new(kv: kv::Store, rules: Rules) -> Self {
        Self {
            kv,
            rules: Arc::new(rules),
            pending: Default::default(),
            wake: Default::default(),
        }
    }

    /// The rules rows are computed with.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Queues the row of `view` at revision `rev` (written by [`RowStore::run`]).
    pub fn queue(&self, view: &OrderView, rev: u64) {
        let Some(row) = Row::of(view, rev, &self.rules) else {
            return;
        };
        let key = shard_key(&view.store, row.utc_date(), &view.order_id);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .insert(view.order_id.clone(), Some(row));
        self.wake.notify_one();
    }

    /// Writes queued rows until `stop`, at most every `every` (so a burst of events costs one
    /// write per shard, not one per event); what is queued when it stops is written first.
    pub async fn run(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => {
                    self.flush().await;
                    return;
                }
            }
            self.flush().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Writes everything queued now; a shard that cannot be written stays queued.
    pub async fn flush(&self) {
        let batch: Pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        let results: Vec<(String, HashMap<String, Option<Row>>, bool)> =
            futures::stream::iter(batch)
                .map(|(key, rows)| async move {
                    let ok = self.apply(&key, &rows).await;
                    (key, rows, ok)
                })
                .buffer_unordered(16)
                .collect()
                .await;
        let mut again = false;
        for (key, rows, ok) in results {
            if ok {
                continue;
            }
            again = true;
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let slot = pending.entry(key).or_default();
            for (id, row) in rows {
                // A newer row queued since wins.
                slot.entry(id).or_insert(row);
            }
        }
        if again {
            metrics::counter!("recon_report_row_retries_total").increment(1);
            self.wake.notify_one();
        }
    }

    /// Applies `rows` to one shard by compare-and-set.
    async fn apply(&self, key: &str, rows: &HashMap<String, Option<Row>>) -> bool {
        for _ in 0..20 {
            let (mut shard, revision) = match self.kv.entry(key).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => (
                    serde_json::from_slice::<Shard>(&e.value).unwrap_or_default(),
                    e.revision,
                ),
                Ok(Some(e)) => (Shard::new(), e.revision),
                Ok(None) => (Shard::new(), 0),
                Err(e) => {
                    tracing::warn!(error = %e, %key, "Report rows not read; kept queued.");
                    return false;
                }
            };
            let mut changed = false;
            for (id, row) in rows {
                match row {
                    Some(r) if shard.get(id).is_none_or(|old| old.rev <= r.rev && old != r) => {
                        shard.insert(id.clone(), r.clone());
                        changed = true;
                    }
                    None => changed |= shard.remove(id).is_some(),
                    _ => {}
                }
            }
            if !changed {
                return true;
            }
            let bytes = Bytes::from(serde_json::to_vec(&shard).expect("rows serialize"));
            let saved = if revision == 0 {
                self.kv
                    .create(key, bytes)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                self.kv
                    .update(key, bytes, revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            match saved {
                Ok(()) => return true,
                Err(e) if e.contains("wrong last sequence") || e.contains("exists") => continue,
                Err(e) => {
                    tracing::warn!(error = %e, %key, "Report rows not written; kept queued.");
                    return false;
                }
            }
        }
        false
    }

    /// Every row of `store` placed on the UTC dates `from..=to`.
    pub async fn read(
        &self,
        store: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<(String, Row)>, String> {
        read(&self.kv, store, from, to).await
    }
}

/// Every row of `store` placed on the UTC dates `from..=to` (shards read side by side).
pub async fn read(
    kv: &kv::Store,
    store: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<(String, Row)>, String> {
    let mut keys = Vec::new();
    let mut d = from;
    while d <= to {
        let prefix = day_prefix(store, d);
        keys.extend((0..SHARDS).map(|s| format!("{prefix}{s:02}")));
        d = d.succ_opt().ok_or("date out of range")?;
    }
    let shards: Vec<Result<Option<Bytes>, String>> = futures::stream::iter(keys)
        .map(|k| async move { kv.get(&k).await.map_err(|e| e.to_string()) })
        .buffered(64)
        .collect()
        .await;
    let mut out = Vec::new();
    for s in shards {
        if let Some(bytes) = s? {
            let shard: Shard =
                serde_json::from_slice(&bytes).map_err(|e| format!("unreadable rows: {e}"))?;
            out.extend(shard);
        }
    }
    Ok(out)
}
