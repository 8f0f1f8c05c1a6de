//! Entries in the `dead_letters` KV bucket, with an in-memory index that follows the bucket.
//!
//! KV is the truth; every replica's index follows it through a watch, so replicas agree. An
//! entry's KV revision is its ETag, and every change is a compare-and-set on it. Payloads are
//! kept under their own keys and read on demand, so memory holds entries, never payloads.

use crate::entry::{Entry, Status, Summary};
use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such entry.
    #[error("no entry {0}")]
    NotFound(String),
    /// The entry changed since the revision the caller had (If-Match).
    #[error("entry {0} changed (now at revision {1})")]
    Conflict(String, u64),
    /// The change itself was refused (bad state for the action).
    #[error("{0}")]
    Refused(String),
    /// NATS failed.
    #[error("KV: {0}")]
    Kv(String),
}

/// An entry and its KV revision (the ETag).
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The entry.
    pub entry: Entry,
    /// Its KV revision.
    pub revision: u64,
}

/// What the index holds per entry: its summary and KV revision.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// The summary (the full entry is in KV: [`Store::load`]).
    pub entry: Arc<Summary>,
    /// Its KV revision.
    pub revision: u64,
}

impl From<&Versioned> for Indexed {
    fn from(v: &Versioned) -> Self {
        Self {
            entry: Arc::new(Summary::of(&v.entry)),
            revision: v.revision,
        }
    }
}

/// The entries by KV key, with open counts kept as they change (an intake checks them per
/// dead letter; counting 10,000 entries each time held the lock the watch needs).
#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Indexed>,
    open_by_issue: HashMap<String, usize>,
    open: usize,
}

impl Index {
    fn count(&mut self, s: &Summary, up: bool) {
        if !s.status.is_open() {
            return;
        }
        let n = self.open_by_issue.entry(s.issue.clone()).or_insert(0);
        if up {
            *n += 1;
            self.open += 1;
        } else {
            *n = n.saturating_sub(1);
            self.open = self.open.saturating_sub(1);
            if *n == 0 {
                self.open_by_issue.remove(&s.issue);
            }
        }
    }

    fn insert(&mut self, key: String, v: Indexed) {
        self.count(&v.entry.clone(), true);
        if let Some(old) = self.entries.insert(key, v) {
            self.count(&old.entry, false);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.count(&old.entry, false);
        }
    }
}

/// The bucket and the index.
#[derive(Debug, Clone)]
pub struct Store {
    kv: kv::Store,
    index: Arc<RwLock<Index>>,
    loaded: Arc<AtomicBool>,
}

/// The KV key of an entry: ids come from stages (v1 ids hold `@`), so the key is a hash.
pub fn entry_key(id: &str) -> String {
    format!("e.{}", key_hash(id))
}

/// The KV key of an entry's original payload (`edited` for the operator's edit).
pub fn payload_key(id: &str, edited: bool) -> String {
    if edited {
        format!("p.{}.edited", key_hash(id))
    } else {
        format!("p.{}", key_hash(id))
    }
}

fn key_hash(id: &str) -> String {
    let d = Sha256::digest(id.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// A store on `kv`; call [`Store::follow`] to fill the index.
    pub fn new(kv: kv::Store) -> Self {
        Self {
            kv,
            index: Arc::default(),
            loaded: Arc::default(),
        }
    }

    /// The bucket.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// True once the index holds every entry that was in the bucket at start.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Loads every entry, then follows the bucket until `shutdown` (reconnecting the watch).
    pub async fn follow(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.load_and_watch(&shutdown).await {
                tracing::warn!(%error, "Review-queue watch ended; reloading.");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }

    async fn load_and_watch(&self, shutdown: &CancellationToken) -> Result<(), async_nats::Error> {
        let last = self.kv.clone().status().await?.info.state.last_sequence;
        let fresh = self.read_all().await?;
        *self.index.write().expect("index lock") = fresh;
        self.loaded.store(true, Ordering::SeqCst);
        let mut watch = self.kv.watch_from_revision("e.>", last + 1).await?;
        loop {
            let next = tokio::select! {
                n = watch.next() => n,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(e) = next else {
                return Err("watch ended".into());
            };
            let e = e?;
            metrics::counter!("dead_letter_index_updates_total").increment(1);
            match e.operation {
                Operation::Put => {
                    if let Some(v) = decode(&e) {
                        self.apply(e.key.clone(), &v);
                    }
                }
                Operation::Delete | Operation::Purge => {
                    self.index.write().expect("index lock").remove(&e.key);
                }
            }
        }
    }

    /// Every entry now. The key listing is a consumer that would go on receiving every later
    /// write: it is dropped here, before the watch starts (kept alive, it buffered them all).
    async fn read_all(&self) -> Result<Index, async_nats::Error> {
        let mut keys = self.kv.keys().await?;
        let mut fresh = Index::default();
        while let Some(key) = keys.next().await {
            let key = key?;
            if !key.starts_with("e.") {
                continue;
            }
            if let Some(e) = self.kv.entry(&key).await?
                && let Some(v) = decode(&e)
            {
                fresh.insert(key, Indexed::from(&v));
            }
        }
        Ok(fresh)
    }

    /// Keeps the newer of what the index has and `v`.
    fn apply(&self, key: String, v: &Versioned) {
        let fresh = Indexed::from(v);
        let mut index = self.index.write().expect("index lock");
        match index.entries.get(&key) {
            Some(old) if old.revision >= fresh.revision => {}
            _ => {
                index.insert(key, fresh);
            }
        }
    }

    /// The whole entry `id`, read from KV.
    pub async fn load(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self
            .kv
            .entry(entry_key(id))
            .await
            .map_err(|e| StoreError::Kv(e.to_string()))?
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| decode(&e)))
    }

    /// The entry `id`, as the index has it.
    pub fn get(&self, id: &str) -> Option<Indexed> {
        self.index
            .read()
            .expect("index lock")
            .entries
            .get(&entry_key(id))
            .cloned()
    }

    /// Runs `f` over every entry (under the read lock: keep it quick, clone what you keep).
    pub fn scan<T>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Indexed>) -> T) -> T {
        let index = self.index.read().expect("index lock");
        let mut it = index.entries.values();
        f(&mut it)
    }

    /// Entries in the index.
    pub fn len(&self) -> usize {
        self.index.read().expect("index lock").entries.len()
    }

    /// True when the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores a new entry with its payload; false if it already existed.
    pub async fn create(&self, entry: Entry, payload: Bytes) -> Result<bool, StoreError> {
        let key = entry_key(&entry.id);
        self.kv
            .put(payload_key(&entry.id, false), payload)
            .await
            .map_err(|e| StoreError::Kv(e.to_string()))?;
        let value = Bytes::from(serde_json::to_vec(&entry).expect("entries serialize"));
        match self.kv.create(&key, value).await {
            Ok(revision) => {
                self.apply(key, &Versioned { entry, revision });
                Ok(true)
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StoreError::Kv(e.to_string())),
        }
    }

    /// Changes entry `id` by `f`, by compare-and-set. With `expected` (If-Match), a different
    /// current revision is a [`StoreError::Conflict`]; without, a lost race is retried.
    pub async fn update<F>(
        &self,
        id: &str,
        expected: Option<u64>,
        mut f: F,
    ) -> Result<Versioned, StoreError>
    where
        F: FnMut(&mut Entry) -> Result<(), StoreError>,
    {
        let key = entry_key(id);
        for _ in 0..8 {
            let current = self
                .kv
                .entry(&key)
                .await
                .map_err(|e| StoreError::Kv(e.to_string()))?
                .filter(|e| e.operation == Operation::Put)
                .and_then(|e| decode(&e))
                .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            if let Some(want) = expected
                && want != current.revision
            {
                return Err(StoreError::Conflict(id.to_owned(), current.revision));
            }
            let mut entry = current.entry.clone();
            f(&mut entry)?;
            if entry == current.entry {
                return Ok(current);
            }
            let value = Bytes::from(serde_json::to_vec(&entry).expect("entries serialize"));
            match self.kv.update(&key, value, current.revision).await {
                Ok(revision) => {
                    let v = Versioned { entry, revision };
                    self.apply(key, &v);
                    return Ok(v);
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    if expected.is_some() {
                        return Err(StoreError::Conflict(id.to_owned(), current.revision));
                    }
                    continue;
                }
                Err(e) => return Err(StoreError::Kv(e.to_string())),
            }
        }
        Err(StoreError::Kv(format!("entry {id} kept changing")))
    }

    /// The payload to replay: the edited one if any, else the original copy.
    pub async fn payload(&self, id: &str, edited: bool) -> Result<Option<Bytes>, StoreError> {
        self.kv
            .get(payload_key(id, edited))
            .await
            .map_err(|e| StoreError::Kv(e.to_string()))
    }

    /// Keeps an operator's edited payload beside the original.
    pub async fn put_edited(&self, id: &str, payload: Bytes) -> Result<(), StoreError> {
        self.kv
            .put(payload_key(id, true), payload)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Kv(e.to_string()))
    }

    /// Removes an entry and its payloads (retention).
    pub async fn remove(&self, id: &str) -> Result<(), StoreError> {
        for key in [payload_key(id, false), payload_key(id, true), entry_key(id)] {
            self.kv
                .purge(&key)
                .await
                .map_err(|e| StoreError::Kv(e.to_string()))?;
        }
        self.index
            .write()
            .expect("index lock")
            .remove(&entry_key(id));
        Ok(())
    }

    /// Entries open now, by stage and reason, and the oldest open one's first sighting.
    pub fn open_counts(&self) -> (HashMap<(String, String), u64>, Option<String>) {
        self.scan(|it| {
            let mut counts = HashMap::new();
            let mut oldest: Option<String> = None;
            for v in it.filter(|v| v.entry.status.is_open()) {
                *counts
                    .entry((v.entry.stage.clone(), v.entry.reason.clone()))
                    .or_insert(0) += 1;
                if oldest.as_ref().is_none_or(|o| v.entry.first_seen < *o) {
                    oldest = Some(v.entry.first_seen.clone());
                }
            }
            (counts, oldest)
        })
    }

    /// Open entries of an issue (its replayable ones, for a fix).
    pub fn of_issue(&self, issue: &str) -> Vec<Indexed> {
        self.scan(|it| {
            it.filter(|v| v.entry.issue == issue && v.entry.status.replayable())
                .cloned()
                .collect()
        })
    }

    /// Counts open entries in `issue` other than `except`.
    pub fn others_open_in(&self, issue: &str, except: &str) -> usize {
        let index = self.index.read().expect("index lock");
        let n = index.open_by_issue.get(issue).copied().unwrap_or(0);
        let own = index
            .entries
            .get(&entry_key(except))
            .is_some_and(|v| v.entry.status.is_open() && v.entry.issue == issue);
        n.saturating_sub(usize::from(own))
    }

    /// Open entries in all.
    pub fn open_total(&self) -> usize {
        self.index.read().expect("index lock").open
    }

    /// Entries that may be resolved by a write of `entity`.
    pub fn awaiting(&self, entity: &str) -> Vec<Indexed> {
        self.scan(|it| {
            it.filter(|v| v.entry.entity == entity && v.entry.status.replayable())
                .cloned()
                .collect()
        })
    }

    /// Entries whose status expires and that closed before `cutoff` (RFC 3339).
    pub fn expired(&self, cutoff: &str) -> Vec<String> {
        self.scan(|it| {
            it.filter(|v| {
                v.entry.status.expires() && v.entry.closed_at.as_deref().is_some_and(|c| c < cutoff)
            })
            .map(|v| v.entry.id.clone())
            .collect()
        })
    }

    /// How many entries have `status`.
    pub fn count_status(&self, status: Status) -> usize {
        self.scan(|it| it.filter(|v| v.entry.status == status).count())
    }
}

fn decode(e: &kv::Entry) -> Option<Versioned> {
    match serde_json::from_slice::<Entry>(&e.value) {
        Ok(entry) => Some(Versioned {
            entry,
            revision: e.revision,
        }),
        Err(error) => {
            tracing::warn!(key = %e.key, %error, "Unreadable review-queue entry; skipped.");
            None
        }
    }
}
