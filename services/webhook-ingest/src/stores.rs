//! The live table of stores and their verifiers, replaced whole on SIGHUP or when the
//! `ingest_secrets` KV bucket changes, so secrets rotate without a restart.

use crate::config::{ReloadSource, StoreApi, StoreConfig};
use futures::StreamExt;
use ledgerline_platform::standard_webhooks::{Secret, Verifier};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;

/// One store as the handler sees it.
#[derive(Debug, Clone)]
pub struct Store {
    /// Verifies its deliveries.
    pub verifier: Arc<Verifier>,
    /// REST API for resync.
    pub api: Option<StoreApi>,
}

/// Stores by name; cheap to read on every request.
#[derive(Debug, Clone)]
pub struct Stores {
    table: Arc<RwLock<BTreeMap<String, Store>>>,
    /// Secrets from the KV bucket, which win over the file and flags for their store.
    overlay: Arc<RwLock<BTreeMap<String, Vec<Secret>>>>,
    base: Arc<RwLock<BTreeMap<String, StoreConfig>>>,
    tolerance_secs: i64,
}

impl Stores {
    /// A table from configuration.
    pub fn new(base: BTreeMap<String, StoreConfig>, tolerance_secs: i64) -> Self {
        let s = Self {
            table: Arc::default(),
            overlay: Arc::default(),
            base: Arc::new(RwLock::new(base)),
            tolerance_secs,
        };
        s.rebuild();
        s
    }

    /// The store named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<Store> {
        self.table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Names of the configured stores.
    pub fn names(&self) -> Vec<String> {
        self.table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn rebuild(&self) {
        let base = self.base.read().unwrap_or_else(|e| e.into_inner());
        let overlay = self.overlay.read().unwrap_or_else(|e| e.into_inner());
        let mut table = BTreeMap::new();
        for (name, cfg) in base.iter() {
            let secrets = overlay
                .get(name)
                .cloned()
                .unwrap_or_else(|| cfg.secrets.clone());
            table.insert(name.clone(), self.store(secrets, cfg.api.clone()));
        }
        for (name, secrets) in overlay.iter().filter(|(n, _)| !base.contains_key(*n)) {
            table.insert(name.clone(), self.store(secrets.clone(), None));
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    fn store(&self, secrets: Vec<Secret>, api: Option<StoreApi>) -> Store {
        Store {
            verifier: Arc::new(Verifier::new(secrets).with_tolerance_secs(self.tolerance_secs)),
            api,
        }
    }

    /// Replaces the configured stores (SIGHUP).
    pub fn replace_base(&self, base: BTreeMap<String, StoreConfig>) {
        *self.base.write().unwrap_or_else(|e| e.into_inner()) = base;
        self.rebuild();
    }

    /// Sets or clears (`None`) one store's overlay secrets.
    pub fn set_overlay(&self, store: &str, secrets: Option<Vec<Secret>>) {
        {
            let mut o = self.overlay.write().unwrap_or_else(|e| e.into_inner());
            match secrets {
                Some(s) => o.insert(store.to_owned(), s),
                None => o.remove(store),
            };
        }
        self.rebuild();
    }
}

/// Parses a KV value: secrets separated by whitespace or commas.
pub fn parse_overlay(value: &[u8]) -> Result<Vec<Secret>, String> {
    let text = std::str::from_utf8(value).map_err(|_| "not UTF-8".to_owned())?;
    let secrets = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| Secret::parse(s).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err("no secret".to_owned());
    }
    Ok(secrets)
}

/// Follows the `ingest_secrets` bucket until `shutdown`: a put sets a store's secrets, a delete
/// returns it to its configured ones. A bad value is logged and ignored (the old secrets stay).
pub async fn watch_overlay(
    js: async_nats::jetstream::Context,
    stores: Stores,
    shutdown: CancellationToken,
) {
    let bucket = ledgerline_contract::buckets::INGEST_SECRETS.bucket;
    while !shutdown.is_cancelled() {
        let watch = async {
            let kv = js.get_key_value(bucket).await.map_err(|e| e.to_string())?;
            let mut entries = kv
                .watch_with_history(">")
                .await
                .map_err(|e| e.to_string())?;
            while let Some(entry) = entries.next().await {
                let entry = entry.map_err(|e| e.to_string())?;
                if !ledgerline_contract::is_valid_token(&entry.key) {
                    tracing::warn!(key = %entry.key, "Ignoring secrets for an invalid store name.");
                    continue;
                }
                match entry.operation {
                    async_nats::jetstream::kv::Operation::Put => {
                        match parse_overlay(&entry.value) {
                            Ok(secrets) => {
                                tracing::info!(store = %entry.key, count = secrets.len(), "Webhook secrets rotated from KV.");
                                stores.set_overlay(&entry.key, Some(secrets));
                            }
                            Err(error) => {
                                tracing::warn!(store = %entry.key, %error, "Ignoring invalid secrets from KV.")
                            }
                        }
                    }
                    _ => {
                        tracing::info!(store = %entry.key, "KV secrets removed; using configured secrets.");
                        stores.set_overlay(&entry.key, None);
                    }
                }
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            r = watch => if let Err(error) = r {
                tracing::warn!(%error, "Secrets watch interrupted; restarting.");
            },
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Reloads the configured stores on every SIGHUP until `shutdown`. A bad file keeps the old table.
pub async fn reload_on_sighup(source: ReloadSource, stores: Stores, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => match source.load_stores() {
                    Ok(base) => {
                        tracing::info!(stores = base.len(), "Configuration reloaded on SIGHUP.");
                        stores.replace_base(base);
                    }
                    Err(error) => tracing::error!(%error, "Reload failed; keeping the previous stores."),
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (source, stores);
        shutdown.cancelled().await;
    }
}
