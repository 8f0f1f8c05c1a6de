//! Egress as Xero meters it from March 2026 (FACTS.md §12): the bytes of the Accounting API's
//! response bodies, as sent (this client asks for no compression, so what it reads is what was
//! sent), summed per app per UTC calendar month. Counted per tenant and endpoint in this
//! process (`xero_client_egress_bytes_total`), and summed for the app across tenants and
//! processes in the RATE_BUDGET bucket (`egress.<app>.<YYYY-MM>`), where the 80 % and 100 %
//! alerts are decided once.
//!
//! Overage is billed, not refused, so past the allowance work goes on. An optional hard cap
//! holds calls instead (they wait for the next month; nothing is dropped).

use crate::usage::{Alert, crossed};
use async_nats::jetstream::kv;
use ledgerline_contract::v1::XeroUsageKind;
use ledgerline_platform::publish::Publisher;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The month's egress of one app.
#[derive(Debug)]
pub struct Egress {
    app: String,
    allowance: Option<u64>,
    cap: Option<u64>,
    kv: Option<kv::Store>,
    publisher: Option<Publisher>,
    /// Bytes counted here and not yet added to the shared total.
    pending: AtomicU64,
    /// The month and its total as last known (shared total plus what this process added).
    known: Mutex<(String, u64)>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Stored {
    bytes: u64,
}

fn month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

/// The short, stable name of the app whose client id this is (the id itself stays out of keys,
/// events and logs).
pub fn app_of(client_id: &str) -> String {
    crate::hex(&Sha256::digest(client_id.as_bytes()))[..12].to_owned()
}

impl Egress {
    /// Egress of the app with `client_id`, against `allowance` bytes a month (`None`: unlimited,
    /// as on Starter), held at `cap` bytes if set.
    pub fn new(client_id: &str, allowance: Option<u64>, cap: Option<u64>) -> Self {
        Self {
            app: app_of(client_id),
            allowance,
            cap,
            kv: None,
            publisher: None,
            pending: AtomicU64::new(0),
            known: Mutex::new((month(), 0)),
        }
    }

    /// Sums the month across processes in `kv` (RATE_BUDGET).
    pub fn shared(mut self, kv: kv::Store) -> Self {
        self.kv = Some(kv);
        self
    }

    /// Publishes the alerts on XERO.
    pub fn alerts(mut self, publisher: Publisher) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// The app's short name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Counts a response body of `bytes` for `tenant` on `endpoint`.
    pub fn record(&self, tenant: &str, endpoint: &str, bytes: u64) {
        metrics::counter!("xero_client_egress_bytes_total", "tenant" => tenant.to_owned(), "endpoint" => endpoint.to_owned())
            .increment(bytes);
        self.pending.fetch_add(bytes, Ordering::SeqCst);
    }

    /// The month's bytes as far as this process knows (the shared total at the last flush,
    /// plus what it has counted since).
    pub fn month_bytes(&self) -> u64 {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner()).1;
        known + self.pending.load(Ordering::SeqCst)
    }

    /// True while the hard cap holds calls.
    pub fn over_cap(&self) -> bool {
        let same_month = self.known.lock().unwrap_or_else(|e| e.into_inner()).0 == month();
        self.cap
            .is_some_and(|cap| same_month && self.month_bytes() >= cap)
    }

    /// Adds what this process counted to the month's shared total, then alerts on the
    /// thresholds the total passed. A new month starts from nothing.
    pub async fn flush(&self) {
        let now = month();
        let delta = self.pending.swap(0, Ordering::SeqCst);
        let (before, total) = match &self.kv {
            Some(kv) => match add(kv, &format!("egress.{}.{now}", self.app), delta).await {
                Ok(t) => t,
                Err(e) => {
                    // Counted again at the next flush.
                    self.pending.fetch_add(delta, Ordering::SeqCst);
                    tracing::debug!(error = %e, "Egress total not updated yet.");
                    return;
                }
            },
            None => {
                let k = self.known.lock().unwrap_or_else(|e| e.into_inner());
                let base = if k.0 == now { k.1 } else { 0 };
                (base, base + delta)
            }
        };
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = (now.clone(), total);
        metrics::gauge!("xero_client_egress_month_bytes", "app" => self.app.clone())
            .set(total as f64);
        let Some(allowance) = self.allowance else {
            return;
        };
        metrics::gauge!("xero_client_egress_allowance_bytes", "app" => self.app.clone())
            .set(allowance as f64);
        for percent in crossed(before, total, allowance) {
            if !self.first_to_alert(&now, percent).await {
                continue;
            }
            Alert {
                kind: XeroUsageKind::MonthEgress,
                tenant: String::new(),
                app: self.app.clone(),
                percent,
                used: total,
                allowance,
                window: now.clone(),
                held: percent >= 100 && self.cap.is_some_and(|c| c <= total),
            }
            .raise(self.publisher.as_ref())
            .await;
        }
    }

    /// Whether this process raises the alert (create-if-absent in the bucket: the first
    /// process to see a threshold passed).
    async fn first_to_alert(&self, month: &str, percent: u32) -> bool {
        let Some(kv) = &self.kv else {
            return true;
        };
        let key = format!("egress.{}.{month}.alert{percent}", self.app);
        kv.create(&key, "1".into()).await.is_ok()
    }

    /// Flushes every `every` until `cancel`, and once more after it.
    pub async fn run(self: std::sync::Arc<Self>, every: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.flush().await,
                _ = cancel.cancelled() => {
                    self.flush().await;
                    return;
                }
            }
        }
    }
}

/// Adds `delta` to the total under `key` by compare-and-set: (total before, total after).
async fn add(kv: &kv::Store, key: &str, delta: u64) -> Result<(u64, u64), String> {
    for _ in 0..20 {
        let entry = kv.entry(key).await.map_err(|e| e.to_string())?;
        let (stored, revision) = match &entry {
            Some(e) if e.operation == kv::Operation::Put => (
                serde_json::from_slice::<Stored>(&e.value).unwrap_or_default(),
                Some(e.revision),
            ),
            _ => (Stored::default(), None),
        };
        if delta == 0 {
            return Ok((stored.bytes, stored.bytes));
        }
        let next = Stored {
            bytes: stored.bytes + delta,
        };
        let body: bytes::Bytes = serde_json::to_vec(&next).unwrap_or_default().into();
        let written = match revision {
            Some(r) => kv.update(key, body, r).await.is_ok(),
            None => kv.create(key, body).await.is_ok(),
        };
        if written {
            return Ok((stored.bytes, next.bytes));
        }
    }
    Err("egress total: too many concurrent updates".into())
}
