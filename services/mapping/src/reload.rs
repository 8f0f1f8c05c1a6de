//! Keeping the mapping current without a restart: the file is re-read when its modification time
//! changes (polled) or on SIGHUP, and the KV overlay is watched. A load that fails validation is
//! logged and counted, and the previous mapping stays in force.

use crate::load::{Effective, Layer, MappingError, load_layers};
use async_nats::jetstream;
use async_nats::jetstream::kv::{Operation, Store};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A cheap, cloneable view of the current mapping.
#[derive(Debug, Clone)]
pub struct MappingHandle {
    rx: watch::Receiver<Arc<Effective>>,
    /// The overlay bucket's revision read so far.
    overlay: watch::Receiver<u64>,
}

impl MappingHandle {
    /// A handle that never changes (tests, benchmarks, replay dry runs).
    pub fn fixed(effective: Effective) -> Self {
        // A receiver keeps the last value after its sender is gone.
        let (_tx, rx) = watch::channel(Arc::new(effective));
        let (_otx, overlay) = watch::channel(u64::MAX);
        Self { rx, overlay }
    }

    /// Waits, at most `timeout`, until the overlay has been read up to KV revision `revision`
    /// (and the mapping rebuilt from it); false if it was not in time. A replay after a fix
    /// carries the fix's revision, so it is never processed under the mapping before it.
    pub async fn overlay_at_least(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.overlay.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// The mapping in force now.
    pub fn current(&self) -> Arc<Effective> {
        self.rx.borrow().clone()
    }

    /// Waits until the mapping changes (for tests and logs).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// Where the mapping comes from, and the state needed to rebuild it.
#[derive(Debug)]
pub struct MappingSource {
    file: Option<PathBuf>,
    overlay: Mutex<BTreeMap<String, Vec<u8>>>,
    tx: watch::Sender<Arc<Effective>>,
    overlay_seen: watch::Sender<u64>,
}

impl MappingSource {
    /// Loads the file (if any) over the defaults; fails if it does not validate, so a service
    /// never starts on a broken mapping.
    pub fn load(file: Option<PathBuf>) -> Result<(Arc<Self>, MappingHandle), MappingError> {
        let layers = match &file {
            Some(p) => vec![Layer::from_file(p)?],
            None => vec![],
        };
        let effective = load_layers(&layers)?;
        publish_metric(None, &effective.revision);
        tracing::info!(revision = %effective.revision, file = ?file, "Mapping loaded.");
        let (tx, rx) = watch::channel(Arc::new(effective));
        let (overlay_seen, overlay) = watch::channel(0);
        Ok((
            Arc::new(Self {
                file,
                overlay: Mutex::new(BTreeMap::new()),
                tx,
                overlay_seen,
            }),
            MappingHandle { rx, overlay },
        ))
    }

    /// A handle on the current mapping.
    pub fn handle(&self) -> MappingHandle {
        MappingHandle {
            rx: self.tx.subscribe(),
            overlay: self.overlay_seen.subscribe(),
        }
    }

    /// The mapping file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Rebuilds from the file and the overlay as last seen. On success the new mapping is in
    /// force (and `Ok(true)` if its revision changed); on failure the old one stays.
    pub fn reload(&self) -> Result<bool, MappingError> {
        let result = self.build();
        match result {
            Ok(effective) => {
                let old = self.tx.borrow().revision.clone();
                if old == effective.revision {
                    return Ok(false);
                }
                publish_metric(Some(&old), &effective.revision);
                tracing::info!(from = %old, to = %effective.revision, "Mapping reloaded.");
                self.tx.send_replace(Arc::new(effective));
                Ok(true)
            }
            Err(error) => {
                metrics::counter!("ledgerline_mapping_reload_errors_total").increment(1);
                tracing::error!(%error, "Mapping reload rejected; the previous mapping stays in force.");
                Err(error)
            }
        }
    }

    fn build(&self) -> Result<Effective, MappingError> {
        let mut layers = Vec::new();
        if let Some(p) = &self.file {
            layers.push(Layer::from_file(p)?);
        }
        let overlay = self.overlay.lock().expect("overlay lock").clone();
        for (key, value) in &overlay {
            layers.push(Layer::from_overlay(key, value)?);
        }
        load_layers(&layers)
    }

    /// Reads every overlay entry now (so the first events already use it), then follows
    /// changes until `shutdown`. Reconnects the watch if it ends.
    pub async fn follow_overlay(
        self: Arc<Self>,
        js: jetstream::Context,
        shutdown: CancellationToken,
    ) {
        let spec = ledgerline_contract::buckets::MAPPING_OVERLAY;
        let mut delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let kv = match js.get_key_value(spec.bucket).await {
                Ok(kv) => kv,
                Err(error) => {
                    tracing::debug!(%error, "Mapping overlay bucket not available yet.");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            if let Err(error) = self.watch(&kv, &shutdown).await {
                tracing::warn!(%error, "Mapping overlay watch ended; restarting.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Loads the current overlay entries once (for start-up and tests).
    pub async fn load_overlay(&self, kv: &Store) -> Result<(), async_nats::Error> {
        // Read before the keys: every entry up to it is then in what follows.
        let last = kv.status().await?.info.state.last_sequence;
        let mut entries = BTreeMap::new();
        let mut keys = kv.keys().await?;
        while let Some(key) = keys.next().await {
            let key = key?;
            if let Some(value) = kv.get(&key).await? {
                entries.insert(key, value.to_vec());
            }
        }
        *self.overlay.lock().expect("overlay lock") = entries;
        let _ = self.reload();
        self.overlay_seen.send_if_modified(|r| {
            let newer = last > *r;
            *r = (*r).max(last);
            newer
        });
        Ok(())
    }

    async fn watch(
        &self,
        kv: &Store,
        shutdown: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        self.load_overlay(kv).await?;
        let mut watch = kv.watch_with_history(">").await?;
        loop {
            let entry = tokio::select! {
                e = watch.next() => e,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(entry) = entry else {
                return Err("watch stream ended".into());
            };
            let entry = entry?;
            let changed = {
                let mut overlay = self.overlay.lock().expect("overlay lock");
                match entry.operation {
                    Operation::Put => overlay
                        .insert(entry.key.clone(), entry.value.to_vec())
                        .is_none_or(|old| old != entry.value.as_ref()),
                    Operation::Delete | Operation::Purge => overlay.remove(&entry.key).is_some(),
                }
            };
            if changed {
                let _ = self.reload();
            }
            let revision = entry.revision;
            self.overlay_seen.send_if_modified(|r| {
                let newer = revision > *r;
                *r = (*r).max(revision);
                newer
            });
        }
    }

    /// Polls the file's modification time and reloads when it changes; also reloads on SIGHUP.
    pub async fn follow_file(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut last = self.file.as_deref().and_then(mtime);
        let mut hup = hangup();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {
                    let now = self.file.as_deref().and_then(mtime);
                    if now != last {
                        last = now;
                        let _ = self.reload();
                    }
                }
                _ = recv_hangup(&mut hup) => {
                    tracing::info!("SIGHUP: reloading the mapping.");
                    let _ = self.reload();
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

fn mtime(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hangup(h: &mut Hangup) {
    match h {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) {
    std::future::pending().await
}

/// `ledgerline_mapping_revision_info{revision}` is 1 for the revision in force, 0 for the last.
fn publish_metric(old: Option<&str>, new: &str) {
    if let Some(old) = old {
        metrics::gauge!("ledgerline_mapping_revision_info", "revision" => old.to_owned()).set(0.0);
    }
    metrics::gauge!("ledgerline_mapping_revision_info", "revision" => new.to_owned()).set(1.0);
    metrics::counter!("ledgerline_mapping_loads_total").increment(1);
}
