//! Signed delivery of a timeline with the contract's retry behaviour and optional faults.
//!
//! Retries follow the Standard Webhooks example schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
//! 14 h, 20 h, 24 h after the first attempt), multiplied by `time_scale` so tests can run it in
//! milliseconds. A `Retry-After` (seconds) is honoured unscaled, capped by `retry_after_cap`: the
//! wait is the larger of the scheduled delay and `Retry-After`. Timeouts, connection errors, 408,
//! 429 and 5xx are retried; 410 disables the endpoint (nothing more is sent); any other status is
//! final. Events with the same partition key go out one at a time, in order, unless `reorder`
//! is on.

use crate::event::{Event, sign_event_with};
use crate::store::Store;
use bytes::Bytes;
use ledgerline_platform::standard_webhooks::{Secret, unix_now};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Delays before attempts 2, 3, ... in seconds (before `time_scale`).
pub const RETRY_SCHEDULE_SECS: [u64; 9] =
    [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400];

/// Which faults to inject. Parsed from a comma list such as `duplicates,reorder,badsig`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// About 10 % of events are delivered a second time (same id and body) a little later.
    pub duplicates: bool,
    /// About 25 % of orders have their first two events swapped (e.g. paid before created).
    pub reorder: bool,
    /// About 5 % of events get an extra delivery stamped an hour old first (expect 401).
    pub stale: bool,
    /// About 5 % of events get an extra delivery signed with a wrong key first (expect 401).
    pub badsig: bool,
    /// The middle third is signed with the next and the current key, the last third with the
    /// next key alone when one was given (else still both).
    pub rotate: bool,
    /// One in 50 events (at least one) is followed by an extra copy under a new id, padded past
    /// `oversize_bytes` with a long note (expect 413).
    pub oversize: bool,
    /// Deliveries go out in bursts of `burst_size` at once, paced to the same average rate.
    pub burst: bool,
}

impl FromStr for Faults {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut f = Faults::default();
        for name in s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "none")
        {
            match name {
                "duplicates" => f.duplicates = true,
                "reorder" => f.reorder = true,
                "stale" => f.stale = true,
                "badsig" => f.badsig = true,
                "rotate" => f.rotate = true,
                "oversize" => f.oversize = true,
                "burst" => f.burst = true,
                "all" => {
                    f = Faults {
                        duplicates: true,
                        reorder: true,
                        stale: true,
                        badsig: true,
                        rotate: true,
                        oversize: true,
                        burst: true,
                    }
                }
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(f)
    }
}

/// How to send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Full endpoint URL, e.g. `http://127.0.0.1:8080/webhooks/clarity/main`.
    pub target: String,
    /// The store's current secret.
    pub secret: Secret,
    /// The key being rotated to (with `rotate`); a random one when `None`.
    pub next_secret: Option<Secret>,
    /// Deliveries per second; `None` sends as fast as the endpoint answers.
    pub rate: Option<f64>,
    /// Parallel delivery lanes (each partition key stays on one lane).
    pub concurrency: usize,
    /// Faults to inject.
    pub faults: Faults,
    /// Seeds the fault choices.
    pub fault_seed: u64,
    /// Multiplies [`RETRY_SCHEDULE_SECS`]; 1.0 is real time.
    pub time_scale: f64,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Attempts per delivery, first included (at most 10).
    pub max_attempts: u32,
    /// Upper bound on an honoured `Retry-After`.
    pub retry_after_cap: Duration,
    /// Body size of the `oversize` fault.
    pub oversize_bytes: usize,
    /// Deliveries per burst with the `burst` fault.
    pub burst_size: usize,
}

impl SendConfig {
    /// Defaults: unpaced, 4 lanes, no faults, real-time schedule, 15 s timeout, 10 attempts,
    /// `Retry-After` capped at 60 s, oversize bodies of 1 MiB + 1 KiB, bursts of 50.
    pub fn new(target: impl Into<String>, secret: Secret) -> Self {
        Self {
            target: target.into(),
            secret,
            next_secret: None,
            rate: None,
            concurrency: 4,
            faults: Faults::default(),
            fault_seed: 0,
            time_scale: 1.0,
            request_timeout: Duration::from_secs(15),
            max_attempts: 10,
            retry_after_cap: Duration::from_secs(60),
            oversize_bytes: 1024 * 1024 + 1024,
            burst_size: 50,
        }
    }
}

/// What happened. Status keys are decimal codes, or `timeout` / `error` for transport failures.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SendReport {
    /// Distinct events in the timeline.
    pub events: usize,
    /// Distinct events that got a 2xx.
    pub delivered: usize,
    /// HTTP attempts of real (not injected) deliveries.
    pub attempts: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Every answer to real deliveries, by status.
    pub responses: BTreeMap<String, u64>,
    /// Real deliveries refused with a final (non-retried) status, by status.
    pub rejected: BTreeMap<String, u64>,
    /// Event ids never acknowledged (refused, retries exhausted, or endpoint disabled).
    pub undelivered: Vec<String>,
    /// Whether a 410 disabled the endpoint.
    pub disabled: bool,
    /// Extra deliveries of the same event (the `duplicates` fault).
    pub duplicates_sent: u64,
    /// Injected faulty deliveries (`stale`, `badsig`, `oversize`): answers by status.
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    /// Wall time.
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Duplicate,
    Stale,
    BadSig,
    Oversize,
}

impl Kind {
    fn injected_name(self) -> Option<&'static str> {
        match self {
            Kind::Stale => Some("stale"),
            Kind::BadSig => Some("badsig"),
            Kind::Oversize => Some("oversize"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    event: Event,
    kind: Kind,
    /// Which signing keys: 0 current, 1 next + current, 2 next only.
    phase: u8,
}

/// Delivers timelines. Cheap to clone; one HTTP client with a connection pool inside.
#[derive(Debug, Clone)]
pub struct Sender {
    cfg: SendConfig,
    client: reqwest::Client,
    store: Option<Arc<Store>>,
}

/// Installs the workspace's TLS provider; a second call is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

struct Shared {
    report: Mutex<SendReport>,
    delivered: Mutex<HashSet<String>>,
    disabled: AtomicBool,
    pacer: Option<Pacer>,
}

struct Pacer {
    start: tokio::time::Instant,
    interval: Duration,
    group: u64,
    n: AtomicU64,
}

impl Pacer {
    async fn wait(&self) {
        let k = self.n.fetch_add(1, Ordering::Relaxed);
        let slot = self
            .interval
            .mul_f64(((k / self.group) * self.group) as f64);
        tokio::time::sleep_until(self.start + slot).await;
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

fn lane_of(key: &str, lanes: usize) -> usize {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % lanes as u64) as usize
}

impl Sender {
    /// A sender for `cfg`.
    pub fn new(cfg: SendConfig) -> anyhow::Result<Self> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.concurrency.max(1))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            cfg,
            client,
            store: None,
        })
    }

    /// Applies each event to `store` just before its first delivery, so a REST server over the
    /// same store agrees with what was sent.
    pub fn with_store(mut self, store: Arc<Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sends every event at least once (unless the endpoint is disabled or an event is refused)
    /// and reports.
    pub async fn send(&self, events: &[Event]) -> SendReport {
        let started = Instant::now();
        let plan = self.plan(events);
        let lanes = self.cfg.concurrency.max(1);
        let mut per_lane: Vec<Vec<Delivery>> = vec![Vec::new(); lanes];
        for d in plan {
            per_lane[lane_of(&d.event.partition_key, lanes)].push(d);
        }
        let pacer = self.cfg.rate.filter(|r| *r > 0.0).map(|rate| Pacer {
            start: tokio::time::Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate),
            group: if self.cfg.faults.burst {
                self.cfg.burst_size.max(1) as u64
            } else {
                1
            },
            n: AtomicU64::new(0),
        });
        let shared = Arc::new(Shared {
            report: Mutex::new(SendReport {
                events: events.len(),
                ..SendReport::default()
            }),
            delivered: Mutex::new(HashSet::new()),
            disabled: AtomicBool::new(false),
            pacer,
        });
        let mut tasks = Vec::new();
        for lane in per_lane.into_iter().filter(|l| !l.is_empty()) {
            let me = self.clone();
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                for d in lane {
                    if shared.disabled.load(Ordering::SeqCst) {
                        break;
                    }
                    me.deliver(&d, &shared).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let delivered = shared
            .delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut report = shared
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        report.delivered = delivered.len();
        report.disabled = shared.disabled.load(Ordering::SeqCst);
        let mut seen = HashSet::new();
        report.undelivered = events
            .iter()
            .filter(|e| !delivered.contains(&e.id) && seen.insert(&e.id))
            .map(|e| e.id.clone())
            .collect();
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        report
    }

    fn plan(&self, events: &[Event]) -> Vec<Delivery> {
        let f = self.cfg.faults;
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.fault_seed ^ 0x5eed_fa17);
        // Per partition, the order the events will go out in.
        let mut queues: BTreeMap<&str, std::collections::VecDeque<&Event>> = BTreeMap::new();
        for e in events {
            queues.entry(&e.partition_key).or_default().push_back(e);
        }
        if f.reorder {
            for q in queues.values_mut() {
                if q.len() >= 2 && rng.random_bool(0.25) {
                    q.swap(0, 1);
                }
            }
        }
        let n = events.len().max(1);
        let mut out = Vec::new();
        let mut deferred: Vec<(usize, Delivery)> = Vec::new();
        for (i, original) in events.iter().enumerate() {
            let e = queues
                .get_mut(original.partition_key.as_str())
                .and_then(|q| q.pop_front())
                .unwrap_or(original);
            let phase = if f.rotate { (i * 3 / n) as u8 } else { 0 };
            let d = |event: &Event, kind| Delivery {
                event: event.clone(),
                kind,
                phase,
            };
            if f.stale && rng.random_bool(0.05) {
                out.push(d(e, Kind::Stale));
            }
            if f.badsig && rng.random_bool(0.05) {
                out.push(d(e, Kind::BadSig));
            }
            out.push(d(e, Kind::Normal));
            if f.duplicates && rng.random_bool(0.1) {
                deferred.push((i + rng.random_range(1..6), d(e, Kind::Duplicate)));
            }
            if f.oversize && i % 50 == 0 {
                out.push(Delivery {
                    event: self.oversize(e, &mut rng),
                    kind: Kind::Oversize,
                    phase,
                });
            }
            let (due, later): (Vec<_>, Vec<_>) = deferred.into_iter().partition(|(at, _)| *at <= i);
            out.extend(due.into_iter().map(|(_, d)| d));
            deferred = later;
        }
        out.extend(deferred.into_iter().map(|(_, d)| d));
        out
    }

    fn oversize(&self, e: &Event, rng: &mut ChaCha8Rng) -> Event {
        let mut v: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
        let id = format!("evt_OVERSIZE{:016X}", rng.random::<u64>());
        v["id"] = serde_json::Value::String(id.clone());
        v["data"]["Notes"] = serde_json::json!([{
            "ID": 1, "Note1": "x".repeat(self.cfg.oversize_bytes), "CreatedDate": "2026-11-20T00:00:00.000Z"
        }]);
        let body = serde_json::to_vec(&v).unwrap_or_default();
        Event {
            id,
            body: Bytes::from(body),
            ..e.clone()
        }
    }

    fn secrets(&self, d: &Delivery) -> Vec<Secret> {
        let next = || {
            self.cfg.next_secret.clone().unwrap_or_else(|| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.fault_seed ^ 0x0707);
                Secret::from_bytes(&rng.random::<[u8; 32]>()).expect("non-empty key")
            })
        };
        match (d.kind, d.phase) {
            (Kind::BadSig, _) => {
                vec![
                    Secret::from_bytes(b"not-the-store-secret-not-the-store")
                        .expect("non-empty key"),
                ]
            }
            (_, 0) => vec![self.cfg.secret.clone()],
            (_, 2) if self.cfg.next_secret.is_some() => vec![next()],
            _ => vec![next(), self.cfg.secret.clone()],
        }
    }

    async fn deliver(&self, d: &Delivery, shared: &Shared) {
        if let Some(p) = &shared.pacer {
            p.wait().await;
        }
        if let (Some(store), Kind::Normal) = (&self.store, d.kind)
            && let Err(e) = store.apply(&d.event)
        {
            tracing::warn!(error = %e, "Event did not apply to the store.");
        }
        let secrets = self.secrets(d);
        if let Some(name) = d.kind.injected_name() {
            let ts = if d.kind == Kind::Stale {
                unix_now() - 3600
            } else {
                unix_now()
            };
            let status = self.attempt(&secrets, &d.event, ts, 1).await.0;
            let mut r = shared.report.lock().unwrap_or_else(|p| p.into_inner());
            bump(r.injected.entry(name.to_owned()).or_default(), &status);
            return;
        }
        if d.kind == Kind::Duplicate {
            shared
                .report
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .duplicates_sent += 1;
        }
        let max = self.cfg.max_attempts.clamp(1, 10);
        for attempt in 1..=max {
            if shared.disabled.load(Ordering::SeqCst) {
                return;
            }
            let (status, retry_after) = self.attempt(&secrets, &d.event, unix_now(), attempt).await;
            {
                let mut r = shared.report.lock().unwrap_or_else(|p| p.into_inner());
                r.attempts += 1;
                if attempt > 1 {
                    r.retries += 1;
                }
                bump(&mut r.responses, &status);
            }
            let code: Option<u16> = status.parse().ok();
            match code {
                Some(c) if (200..300).contains(&c) => {
                    shared
                        .delivered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(d.event.id.clone());
                    return;
                }
                Some(410) => {
                    tracing::warn!(target_url = %self.cfg.target, "Endpoint answered 410; disabling it.");
                    shared.disabled.store(true, Ordering::SeqCst);
                    return;
                }
                Some(c) if c == 408 || c == 429 || c >= 500 => {}
                None => {}
                Some(_) => {
                    bump(
                        &mut shared
                            .report
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .rejected,
                        &status,
                    );
                    return;
                }
            }
            if attempt == max {
                return;
            }
            let scheduled = Duration::from_secs(RETRY_SCHEDULE_SECS[(attempt - 1) as usize])
                .mul_f64(self.cfg.time_scale.max(0.0));
            let honoured = retry_after
                .map(|r| r.min(self.cfg.retry_after_cap))
                .unwrap_or_default();
            tokio::time::sleep(scheduled.max(honoured)).await;
        }
    }

    /// One POST; returns the status (or `timeout` / `error`) and any `Retry-After`.
    async fn attempt(
        &self,
        secrets: &[Secret],
        e: &Event,
        ts: i64,
        attempt: u32,
    ) -> (String, Option<Duration>) {
        let mut req = self
            .client
            .post(&self.cfg.target)
            .timeout(self.cfg.request_timeout)
            .body(e.body.clone());
        for (name, value) in sign_event_with(secrets, e, ts, attempt) {
            req = req.header(name, value);
        }
        match req.send().await {
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let status = resp.status().as_u16().to_string();
                // Drain so the connection can be reused.
                let _ = resp.bytes().await;
                (status, retry_after)
            }
            Err(err) if err.is_timeout() => ("timeout".to_owned(), None),
            Err(err) => {
                tracing::debug!(error = %err, "Delivery attempt failed.");
                ("error".to_owned(), None)
            }
        }
    }
}
