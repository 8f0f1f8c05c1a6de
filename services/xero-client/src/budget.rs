//! Per-tenant call budget (concurrent, per minute, per day) and circuit breaker.
//!
//! The budget spends our own count before Xero has to say no, and is corrected by the
//! `X-MinLimit-Remaining` / `X-DayLimit-Remaining` headers (in the shared bucket, so every replica
//! holds back for calls other apps made); a 429 pauses the tenant for
//! `Retry-After`. Windows are fixed and start at the first call, as Xero's do.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Rate limits per tenant, with windows already divided by the time scale.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls per minute window.
    pub minute: u32,
    /// Calls per day window.
    pub day: u32,
    /// Calls in flight.
    pub concurrent: u32,
    /// Length of the minute window.
    pub minute_window: Duration,
    /// Length of the day window.
    pub day_window: Duration,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    used: u32,
    /// Of `used`, calls made for backfill.
    backfill: u32,
    limit: u32,
    /// Xero's window length.
    nominal: Duration,
    /// Ours: nominal plus a dead zone in which no call is sent, so a call we count in one
    /// window never reaches Xero in its next one (Xero restarts a window at the first call
    /// after the last one ended; so do we).
    len: Duration,
}

/// The dead zone after a minute window: 2 % of it.
fn dead_zone(minute: Duration) -> Duration {
    minute / 50
}

/// The least dead zone after a day window. Xero's window starts when the call that opens it
/// arrives, ours when we take that call, so ours must outlast it by that call's trip (a token
/// fetch and a busy host included) or the next window's first calls meet Xero's old count.
/// Two seconds of a 24-hour window cost nothing; under a test's time scale the minute's 2 %
/// is far shorter than the trip.
const DAY_MARGIN: Duration = Duration::from_secs(2);

/// The dead zone after a day window.
fn day_dead_zone(minute: Duration) -> Duration {
    dead_zone(minute).max(DAY_MARGIN)
}

impl Window {
    fn new(limit: u32, nominal: Duration, dead: Duration) -> Self {
        Self {
            start: Instant::now(),
            used: 0,
            backfill: 0,
            limit,
            nominal,
            len: nominal + dead,
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.start) >= self.len {
            self.start = now;
            self.used = 0;
            self.backfill = 0;
        }
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        let in_dead_zone = self.used > 0 && now.duration_since(self.start) >= self.nominal;
        (self.used >= self.limit || in_dead_zone)
            .then(|| (self.start + self.len).saturating_duration_since(now))
    }

    fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

#[derive(Debug)]
struct State {
    minute: Window,
    day: Window,
    paused_until: Option<Instant>,
}

/// One tenant's budget.
#[derive(Debug)]
pub struct Budget {
    tenant: String,
    state: Mutex<State>,
    inflight: std::sync::Arc<Semaphore>,
    shared: Option<SharedWindows>,
    slots: Option<std::sync::Arc<SharedSlots>>,
    /// The background lanes' caps: calls per minute window and per day window.
    backfill: Caps,
    /// Live calls of this process waiting for a slot: background calls let them go first.
    live_waiting: std::sync::atomic::AtomicUsize,
    /// Where the day-window alerts go (none: logged and counted only).
    alerts: Option<ledgerline_platform::publish::Publisher>,
}

/// How many calls of each window backfill may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Per minute window.
    pub minute: u32,
    /// Per day window.
    pub day: u32,
}

impl Caps {
    /// `share` (0..=1) of each limit, rounded down. A share that allows any calls in the day
    /// allows at least one a minute, or backfill could never start on a tiny minute limit.
    pub fn of(minute: u32, day: u32, share: f64) -> Self {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let part = |limit: u32| ((f64::from(limit) * share).floor() as u32).min(limit);
        let day = part(day);
        let minute = if day == 0 { 0 } else { part(minute).max(1) };
        Self { minute, day }
    }

    /// Why a backfill call may not go, given what backfill used in each window.
    fn wait(&self, minute_used: u32, day_used: u32) -> Option<Cap> {
        if day_used >= self.day {
            Some(Cap::Day)
        } else if minute_used >= self.minute {
            Some(Cap::Minute)
        } else {
            None
        }
    }
}

/// Which backfill cap was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Minute,
    Day,
}

/// The priority lane a call is taken in. Live orders go first; the lanes below them (orders
/// that last changed long ago, the reconciler's polling) together spend at most the
/// background share of each window ([`Budget::background_share`]) and wait while a live call
/// of the same process waits for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Orders as they happen.
    Live,
    /// Orders that last changed long ago (a backlog after an outage, an import).
    Backfill,
    /// The reconciler's reads of both sides.
    Reconcile,
}

impl Lane {
    /// True for the lanes below live, capped at the background share.
    pub fn is_background(self) -> bool {
        self != Self::Live
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Backfill => "backfill",
            Self::Reconcile => "reconcile",
        }
    }
}

tokio::task_local! {
    /// The lane of the work running in this task.
    static LANE: Lane;
}

/// Runs `f` with its Xero calls taken in `lane`.
pub async fn in_lane<F: std::future::Future>(lane: Lane, f: F) -> F::Output {
    LANE.scope(lane, f).await
}

/// Runs `f` with its Xero calls counted as backfill (capped by the background share).
pub async fn as_backfill<F: std::future::Future>(f: F) -> F::Output {
    in_lane(Lane::Backfill, f).await
}

/// The lane of the calling task (live unless [`in_lane`] says otherwise).
pub fn current_lane() -> Lane {
    LANE.try_with(|l| *l).unwrap_or(Lane::Live)
}

/// Counts this process's live calls waiting for a slot while it lives.
struct LiveWaiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> LiveWaiting<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for LiveWaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The minute and day windows kept in the RATE_BUDGET bucket, so every replica spends from
/// one budget per tenant (compare-and-set on the entry; wall-clock window starts).
#[derive(Debug)]
struct SharedWindows {
    kv: async_nats::jetstream::kv::Store,
    key: String,
    minute: (u32, Duration),
    day: (u32, Duration),
    /// See [`Window`]: no call goes out between a window's nominal end and this much later
    /// (minute, day).
    dead: (Duration, Duration),
    /// What the last take saw: calls left in the minute window and when it started (unix ms).
    seen: Mutex<(u32, u64)>,
    /// The same for the day window: calls left in it and when it started (unix ms).
    seen_day: Mutex<(u32, u64)>,
    /// Calls used in the minute and day windows as of the last take.
    used: Mutex<(u32, u32)>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SharedState {
    /// Minute window start, unix ms.
    ms: u64,
    /// Calls in it.
    mu: u32,
    /// Day window start, unix ms.
    ds: u64,
    /// Calls in it.
    du: u32,
    /// Of `mu`, backfill calls.
    #[serde(default)]
    bm: u32,
    /// Of `du`, backfill calls.
    #[serde(default)]
    bd: u32,
}

/// A shared entry and the revision to compare-and-set against (`None`: create it). A deleted
/// or unreadable entry reads as the default.
async fn read_entry<T: Default + serde::de::DeserializeOwned>(
    kv: &async_nats::jetstream::kv::Store,
    key: &str,
) -> Result<(T, Option<u64>), ()> {
    use async_nats::jetstream::kv::Operation;
    Ok(match kv.entry(key).await.map_err(|_| ())? {
        Some(e) if e.operation == Operation::Put => (
            serde_json::from_slice(&e.value).unwrap_or_default(),
            Some(e.revision),
        ),
        Some(e) => (T::default(), Some(e.revision)),
        None => (T::default(), None),
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl SharedWindows {
    fn seen_used(&self) -> (u32, u32) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Minute and day window lengths in ms.
    fn lens(&self) -> (u64, u64) {
        (
            self.minute.1.as_millis() as u64,
            self.day.1.as_millis() as u64,
        )
    }

    /// Takes one call, or says how long to wait. Store trouble lets the call go (the local
    /// 429 handling still protects the tenant) rather than stalling every replica.
    /// On success, the day window as the call left it: (calls before, after, start in unix ms).
    async fn take(&self, backfill: Option<Caps>) -> Result<Option<(u32, u32, u64)>, Wait> {
        for _ in 0..20 {
            let Ok((mut st, rev)) = read_entry::<SharedState>(&self.kv, &self.key).await else {
                return Ok(None);
            };
            let now = now_ms();
            let (mdead, ddead) = (
                self.dead.0.as_millis() as u64,
                self.dead.1.as_millis() as u64,
            );
            let (mlen, dlen) = (
                self.minute.1.as_millis() as u64,
                self.day.1.as_millis() as u64,
            );
            for (start, used, back, len, dead) in [
                (&mut st.ms, &mut st.mu, &mut st.bm, mlen, mdead),
                (&mut st.ds, &mut st.du, &mut st.bd, dlen, ddead),
            ] {
                let age = now.saturating_sub(*start);
                if age >= len + dead {
                    *start = now;
                    *used = 0;
                    *back = 0;
                } else if age >= len && *used > 0 {
                    // The dead zone after Xero's window: nothing goes out until ours ends.
                    let wait = (*start + len + dead).saturating_sub(now);
                    return Err(Wait::Short(Duration::from_millis(wait.max(1))));
                }
            }
            if st.du >= self.day.0 {
                return Err(Wait::Day(Duration::from_millis(
                    (st.ds + dlen + ddead).saturating_sub(now),
                )));
            }
            if let Some(caps) = backfill {
                metrics::gauge!("xero_client_background_day_remaining", "tenant" => self.key.clone())
                    .set(caps.day.saturating_sub(st.bd) as f64);
                match caps.wait(st.bm, st.bd) {
                    Some(Cap::Day) => {
                        return Err(Wait::Backfill(Duration::from_millis(
                            (st.ds + dlen + ddead).saturating_sub(now),
                        )));
                    }
                    Some(Cap::Minute) => {
                        return Err(Wait::Short(Duration::from_millis(
                            (st.ms + mlen + mdead).saturating_sub(now).max(1),
                        )));
                    }
                    None => {}
                }
            }
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
                (self.minute.0.saturating_sub(st.mu + 1), st.ms);
            *self.seen_day.lock().unwrap_or_else(|e| e.into_inner()) =
                (self.day.0.saturating_sub(st.du + 1), st.ds);
            *self.used.lock().unwrap_or_else(|e| e.into_inner()) = (st.mu + 1, st.du + 1);
            metrics::gauge!("xero_client_budget_minute_remaining", "tenant" => self.key.clone())
                .set(self.minute.0.saturating_sub(st.mu) as f64);
            metrics::gauge!("xero_client_budget_day_remaining", "tenant" => self.key.clone())
                .set(self.day.0.saturating_sub(st.du) as f64);
            if st.mu >= self.minute.0 {
                return Err(Wait::Short(Duration::from_millis(
                    (st.ms + mlen + mdead).saturating_sub(now),
                )));
            }
            st.mu += 1;
            st.du += 1;
            if backfill.is_some() {
                st.bm += 1;
                st.bd += 1;
            }
            let bytes: bytes::Bytes = serde_json::to_vec(&st).unwrap_or_default().into();
            let written = match rev {
                Some(r) => self.kv.update(&self.key, bytes, r).await.is_ok(),
                None => self.kv.create(&self.key, bytes).await.is_ok(),
            };
            if written {
                return Ok(Some((st.du - 1, st.du, st.ds)));
            }
            // Another replica took a call at the same moment: read again.
        }
        Err(Wait::Short(Duration::from_millis(5)))
    }
}

/// Calls Xero says were used in its windows, by a call sent at `at` (unix ms).
#[derive(Debug, Clone, Copy)]
struct Floor {
    minute: Option<u32>,
    day: Option<u32>,
    at: u64,
}

impl Floor {
    /// Whether this says more was used than the last take saw (most responses agree with
    /// our own count, and need no write).
    fn raises(&self, seen: &(u32, u32)) -> bool {
        self.minute.is_some_and(|m| m > seen.0) || self.day.is_some_and(|d| d > seen.1)
    }

    /// Raises the counts of the windows the call was sent in; true if anything changed.
    fn apply(&self, st: &mut SharedState, (mlen, dlen): (u64, u64)) -> bool {
        let mut changed = false;
        for (start, used, len, seen) in [
            (st.ms, &mut st.mu, mlen, self.minute),
            (st.ds, &mut st.du, dlen, self.day),
        ] {
            let current = self.at >= start && self.at < start + len;
            if let Some(seen) = seen.filter(|s| current && *s > *used) {
                *used = seen;
                changed = true;
            }
        }
        changed
    }
}

/// Raises the shared windows' counts to Xero's, by compare-and-set. A floor seen before the
/// window it would apply to started is stale and ignored; store trouble drops the correction
/// (our own count and the 429 handling still hold).
async fn raise_shared(
    kv: &async_nats::jetstream::kv::Store,
    key: &str,
    (mlen, dlen): (u64, u64),
    floor: Floor,
) {
    use async_nats::jetstream::kv::Operation;
    for _ in 0..20 {
        let Ok(Some(entry)) = kv.entry(key).await else {
            return;
        };
        if entry.operation != Operation::Put {
            return;
        }
        let mut st = serde_json::from_slice::<SharedState>(&entry.value).unwrap_or_default();
        if !floor.apply(&mut st, (mlen, dlen)) {
            return;
        }
        let bytes: bytes::Bytes = serde_json::to_vec(&st).unwrap_or_default().into();
        if kv.update(key, bytes, entry.revision).await.is_ok() {
            tracing::debug!(
                key,
                minute_used = st.mu,
                day_used = st.du,
                "Shared budget raised to Xero's count."
            );
            return;
        }
    }
}

/// The share of each window's calls that may go at once at its start, before pacing applies.
pub const PACE_BURST: f64 = 0.05;

/// A shared slot's longest hold unless [`Budget::call_lease`] says otherwise.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// One call's right to be in flight: this process's slot and, with a shared budget, one of the
/// tenant's shared slots, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    _local: OwnedSemaphorePermit,
    lease: Option<(std::sync::Arc<SharedSlots>, Option<u64>)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((slots, Some(id))) = self.lease.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { slots.give_back(id).await });
        }
    }
}

/// The tenant's calls in flight, shared by every process through one RATE_BUDGET entry
/// (`<tenant>.inflight`): a list of leases taken and given back by compare-and-set. Each lease
/// expires, so a process that crashed mid-call frees its slot by itself.
#[derive(Debug)]
struct SharedSlots {
    kv: async_nats::jetstream::kv::Store,
    key: String,
    limit: u32,
    lease: Duration,
}

/// The leases held: (holder id, expiry in unix ms).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Leases {
    l: Vec<(u64, u64)>,
}

/// How often a full tenant is looked at again.
const SLOT_POLL: Duration = Duration::from_millis(10);

/// A random holder id: pods share pids and clocks, so neither can tell holders apart.
fn lease_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

impl SharedSlots {
    /// Waits for a slot (a background caller after this process's waiting live calls);
    /// `Some(None)` when the store cannot be read (the call goes, as with
    /// the windows: Xero's 429 still protects the tenant); `None` if `cancel` fired.
    async fn take(
        &self,
        cancel: &tokio_util::sync::CancellationToken,
        yield_to: Option<&std::sync::atomic::AtomicUsize>,
    ) -> Option<Option<u64>> {
        let id = lease_id();
        let mut conflicts = 0u32;
        loop {
            Budget::give_way(yield_to, cancel).await?;
            let Ok((mut leases, rev)) = read_entry::<Leases>(&self.kv, &self.key).await else {
                return Some(None);
            };
            let now = now_ms();
            leases.l.retain(|(_, until)| *until > now);
            if leases.l.len() < self.limit as usize {
                leases.l.push((id, now + self.lease.as_millis() as u64));
                let bytes: bytes::Bytes = serde_json::to_vec(&leases).unwrap_or_default().into();
                let written = match rev {
                    Some(r) => self.kv.update(&self.key, bytes, r).await.is_ok(),
                    None => self.kv.create(&self.key, bytes).await.is_ok(),
                };
                if written {
                    return Some(Some(id));
                }
                // Another process took or gave back a slot at the same moment: read again.
                conflicts += 1;
                if conflicts > 200 {
                    return Some(None);
                }
                continue;
            }
            metrics::counter!("xero_client_inflight_waits_total", "tenant" => self.key.clone())
                .increment(1);
            tokio::select! {
                _ = tokio::time::sleep(SLOT_POLL) => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }

    /// Gives lease `id` back (gone already if it expired and another process pruned it).
    async fn give_back(&self, id: u64) {
        use async_nats::jetstream::kv::Operation;
        for _ in 0..50 {
            let Ok(Some(e)) = self.kv.entry(&self.key).await else {
                return;
            };
            if e.operation != Operation::Put {
                return;
            }
            let mut leases = serde_json::from_slice::<Leases>(&e.value).unwrap_or_default();
            let before = leases.l.len();
            leases.l.retain(|(held, _)| *held != id);
            if leases.l.len() == before {
                return;
            }
            let bytes: bytes::Bytes = serde_json::to_vec(&leases).unwrap_or_default().into();
            if self.kv.update(&self.key, bytes, e.revision).await.is_ok() {
                return;
            }
        }
    }
}

/// Why a call may not go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Minute window spent (or paused by a 429).
    Short(Duration),
    /// Daily window spent: hold work, report it.
    Day(Duration),
    /// Backfill's share of the day window spent: hold backfill work until the window resets.
    Backfill(Duration),
}

impl Budget {
    /// A fresh budget.
    pub fn new(tenant: &str, limits: Limits) -> Self {
        // Our windows end slightly after Xero's (which restart at the first call after they
        // end), so a call we count in a new window is in Xero's new window too.
        Self {
            tenant: tenant.to_owned(),
            state: Mutex::new(State {
                minute: Window::new(
                    limits.minute,
                    limits.minute_window,
                    dead_zone(limits.minute_window),
                ),
                day: Window::new(
                    limits.day,
                    limits.day_window,
                    day_dead_zone(limits.minute_window),
                ),
                paused_until: None,
            }),
            inflight: std::sync::Arc::new(Semaphore::new(limits.concurrent as usize)),
            shared: None,
            slots: None,
            backfill: Caps::of(limits.minute, limits.day, 1.0),
            live_waiting: std::sync::atomic::AtomicUsize::new(0),
            alerts: None,
        }
    }

    /// Publishes the day window's 80 % and 100 % alerts (`XeroUsageAlert`) on XERO.
    pub fn alerts(mut self, publisher: ledgerline_platform::publish::Publisher) -> Self {
        self.alerts = Some(publisher);
        self
    }

    /// Alerts on the thresholds of the day window that the call just taken passed (from
    /// `before` to `used` of `limit`; the window started at `start_ms`). With shared windows
    /// only the process whose compare-and-set took the call sees the crossing.
    fn day_alerts(&self, before: u32, used: u32, limit: u32, start_ms: u64) {
        let passed = crate::usage::crossed(u64::from(before), u64::from(used), u64::from(limit));
        if passed.is_empty() {
            return;
        }
        let window = chrono::DateTime::from_timestamp_millis(start_ms as i64)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for percent in passed {
            let alert = crate::usage::Alert {
                kind: ledgerline_contract::v1::XeroUsageKind::DayCalls,
                tenant: self.tenant.clone(),
                app: String::new(),
                percent,
                used: u64::from(used),
                allowance: u64::from(limit),
                window: window.clone(),
                held: percent >= 100,
            };
            let publisher = self.alerts.clone();
            tokio::spawn(async move { alert.raise(publisher.as_ref()).await });
        }
    }

    /// Caps calls of the background lanes (backfill and reconcile together) at `share` of each
    /// window (1.0: no cap), so live orders keep the rest.
    pub fn background_share(mut self, share: f64) -> Self {
        let (minute, day) = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (s.minute.limit, s.day.limit)
        };
        self.backfill = Caps::of(minute, day, share);
        self
    }

    /// Spends the minute and day windows, and the calls in flight, from the RATE_BUDGET
    /// bucket (shared by replicas and every other process calling Xero for the tenant) instead
    /// of this process's own count.
    pub fn shared(mut self, kv: async_nats::jetstream::kv::Store, limits: Limits) -> Self {
        self.slots = Some(std::sync::Arc::new(SharedSlots {
            kv: kv.clone(),
            key: format!("{}.inflight", self.tenant),
            limit: limits.concurrent,
            lease: DEFAULT_LEASE,
        }));
        self.shared = Some(SharedWindows {
            key: self.tenant.clone(),
            kv,
            minute: (limits.minute, limits.minute_window),
            day: (limits.day, limits.day_window),
            dead: (
                dead_zone(limits.minute_window),
                day_dead_zone(limits.minute_window),
            ),
            seen: Mutex::new((limits.minute, 0)),
            seen_day: Mutex::new((limits.day, 0)),
            used: Mutex::new((0, 0)),
        });
        self
    }

    /// How long a shared in-flight slot is held at most: a holder that crashed mid-call frees
    /// it after this. Set it above the call timeout.
    pub fn call_lease(mut self, lease: Duration) -> Self {
        if let Some(slots) = self.slots.as_mut().and_then(std::sync::Arc::get_mut) {
            slots.lease = lease;
        }
        self
    }

    /// Takes one call from the windows, or says how long to wait.
    pub fn try_take(&self) -> Result<(), Wait> {
        self.take_local(current_lane().is_background())
    }

    fn take_local(&self, backfill: bool) -> Result<(), Wait> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(until) = s.paused_until {
            if until > now {
                return Err(Wait::Short(until - now));
            }
            s.paused_until = None;
        }
        if self.shared.is_some() {
            // The shared windows decide; this process only keeps pauses and concurrency.
            return Ok(());
        }
        s.minute.roll(now);
        s.day.roll(now);
        if let Some(w) = s.day.wait(now) {
            return Err(Wait::Day(w));
        }
        if let Some(w) = s.minute.wait(now) {
            return Err(Wait::Short(w));
        }
        if backfill {
            let day_left = (s.day.start + s.day.len).saturating_duration_since(now);
            let minute_left = (s.minute.start + s.minute.len).saturating_duration_since(now);
            match self.backfill.wait(s.minute.backfill, s.day.backfill) {
                Some(Cap::Day) => return Err(Wait::Backfill(day_left)),
                Some(Cap::Minute) => return Err(Wait::Short(minute_left)),
                None => {}
            }
            s.minute.backfill += 1;
            s.day.backfill += 1;
            metrics::gauge!("xero_client_background_day_remaining", "tenant" => self.tenant.clone())
                .set(self.backfill.day.saturating_sub(s.day.backfill) as f64);
        }
        s.minute.used += 1;
        s.day.used += 1;
        let day_start = now_ms().saturating_sub(now.duration_since(s.day.start).as_millis() as u64);
        self.day_alerts(s.day.used - 1, s.day.used, s.day.limit, day_start);
        metrics::gauge!("xero_client_budget_minute_remaining", "tenant" => self.tenant.clone())
            .set(s.minute.remaining() as f64);
        metrics::gauge!("xero_client_budget_day_remaining", "tenant" => self.tenant.clone())
            .set(s.day.remaining() as f64);
        Ok(())
    }

    /// Waits for a slot in flight and a call from the windows; `None` if `cancel` fired first.
    /// The permit holds the slot until it is dropped.
    pub async fn acquire(&self, cancel: &tokio_util::sync::CancellationToken) -> Option<Permit> {
        let lane = current_lane();
        let local = self.acquire_windows(cancel, lane).await?;
        let lease = match &self.slots {
            Some(slots) => {
                let _waiting =
                    (!lane.is_background()).then(|| LiveWaiting::new(&self.live_waiting));
                let yield_to = lane.is_background().then_some(&self.live_waiting);
                Some((slots.clone(), slots.take(cancel, yield_to).await?))
            }
            None => None,
        };
        metrics::counter!("xero_client_lane_calls_total", "tenant" => self.tenant.clone(), "lane" => lane.label())
            .increment(1);
        Some(Permit {
            _local: local,
            lease,
        })
    }

    /// This process's slot. A live call queues for it; a background call takes one only while
    /// no live call waits, so a live call never queues behind a background one.
    async fn local_slot(
        &self,
        lane: Lane,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        if !lane.is_background() {
            let _waiting = LiveWaiting::new(&self.live_waiting);
            return tokio::select! {
                p = self.inflight.clone().acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
        }
        loop {
            Self::give_way(Some(&self.live_waiting), cancel).await?;
            if let Ok(p) = self.inflight.clone().try_acquire_owned() {
                return Some(p);
            }
            tokio::select! {
                _ = tokio::time::sleep(SLOT_POLL) => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }

    /// Waits while live calls of this process wait for a slot (background lanes only).
    async fn give_way(
        yield_to: Option<&std::sync::atomic::AtomicUsize>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<()> {
        while yield_to.is_some_and(|n| n.load(std::sync::atomic::Ordering::SeqCst) > 0) {
            tokio::select! {
                _ = tokio::time::sleep(SLOT_POLL) => {}
                _ = cancel.cancelled() => return None,
            }
        }
        Some(())
    }

    /// This process's slot and a call from the windows.
    async fn acquire_windows(
        &self,
        cancel: &tokio_util::sync::CancellationToken,
        lane: Lane,
    ) -> Option<OwnedSemaphorePermit> {
        let mut permit: Option<OwnedSemaphorePermit> = None;
        let mut reported_day = false;
        let backfill = lane.is_background();
        let mut held = false;
        loop {
            if permit.is_none() {
                permit = Some(self.local_slot(lane, cancel).await?);
            }
            let taken = match self.take_local(backfill) {
                Ok(()) => match &self.shared {
                    Some(shared) => {
                        shared
                            .take(backfill.then_some(self.backfill))
                            .await
                            .map(|day| {
                                if let Some((before, used, start)) = day {
                                    self.day_alerts(before, used, shared.day.0, start);
                                }
                            })
                    }
                    None => Ok(()),
                },
                Err(w) => Err(w),
            };
            match taken {
                Ok(()) => {
                    if held {
                        tracing::info!(tenant = %self.tenant, "Backfill share available again; backfill resumes.");
                        metrics::gauge!("xero_client_background_held", "tenant" => self.tenant.clone()).set(0.0);
                    }
                    return permit;
                }
                Err(w) => {
                    let d = match w {
                        Wait::Short(d) => d,
                        Wait::Backfill(d) => {
                            // A day's hold must not keep a slot live calls could use.
                            permit = None;
                            if !held {
                                held = true;
                                tracing::warn!(tenant = %self.tenant, wait_secs = d.as_secs(), calls = self.backfill.day, "Backfill's share of the daily Xero calls is spent; holding backfill until the window resets (live orders go on).");
                                metrics::gauge!("xero_client_background_held", "tenant" => self.tenant.clone()).set(1.0);
                                metrics::counter!("xero_client_background_holds_total", "tenant" => self.tenant.clone()).increment(1);
                            }
                            d
                        }
                        Wait::Day(d) => {
                            if !reported_day {
                                reported_day = true;
                                tracing::warn!(tenant = %self.tenant, wait_secs = d.as_secs(), "Daily Xero call limit spent; holding work until the window resets.");
                                metrics::counter!("xero_client_day_limit_holds_total", "tenant" => self.tenant.clone()).increment(1);
                            }
                            d
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(d.max(Duration::from_millis(5))) => {}
                        _ = cancel.cancelled() => {
                            if held {
                                metrics::gauge!("xero_client_background_held", "tenant" => self.tenant.clone()).set(0.0);
                            }
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// Applies Xero's view of what is left after a call sent at `sent` (Xero also counts calls
    /// other apps made for this tenant). With shared windows the correction goes to the
    /// bucket, for every replica, and only to the windows the call was sent in.
    pub fn observe(
        &self,
        sent: Instant,
        minute_remaining: Option<u32>,
        day_remaining: Option<u32>,
    ) {
        if let Some(shared) = &self.shared {
            let floor = Floor {
                minute: minute_remaining.map(|m| shared.minute.0.saturating_sub(m)),
                day: day_remaining.map(|d| shared.day.0.saturating_sub(d)),
                at: now_ms().saturating_sub(sent.elapsed().as_millis() as u64),
            };
            if floor.raises(&shared.seen_used()) {
                let (kv, key, windows) = (shared.kv.clone(), shared.key.clone(), shared.lens());
                tokio::spawn(async move { raise_shared(&kv, &key, windows, floor).await });
            }
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = minute_remaining {
            let used = s.minute.limit.saturating_sub(m);
            s.minute.used = s.minute.used.max(used);
        }
        if let Some(d) = day_remaining {
            let used = s.day.limit.saturating_sub(d);
            s.day.used = s.day.used.max(used);
        }
    }

    /// A 429: pause this tenant for `retry_after`.
    pub fn pause(&self, retry_after: Duration, problem: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + retry_after;
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
        if problem == "day" {
            s.day.used = s.day.limit;
            s.day.start = Instant::now();
            s.day.len = retry_after;
        }
        metrics::counter!("xero_client_throttled_total", "tenant" => self.tenant.clone(), "problem" => problem.to_owned()).increment(1);
        tracing::warn!(tenant = %self.tenant, retry_after_ms = retry_after.as_millis() as u64, problem, "Xero said 429; pausing this tenant.");
    }

    /// True while calls are being spent no faster than the windows renew: in the minute and in
    /// the day window, the share of calls left (plus a first burst of [`PACE_BURST`] of the
    /// limit) is at least the share of the window's time left. `xero_client_budget_on_pace`
    /// is 1 or 0. See [`Budget::pace_wait`].
    pub fn on_pace(&self) -> bool {
        self.pace_wait().is_none()
    }

    /// `None` while on pace ([`Budget::on_pace`]); else how long until the windows have
    /// renewed enough for the next call to be on pace again. Callers let their batches fill
    /// for that long (the writer up to `WRITER_MAX_LINGER`), so a busy minute, or a busy
    /// morning, carries more orders per call instead of spending the calls the rest of the
    /// window would need.
    pub fn pace_wait(&self) -> Option<Duration> {
        let now_unix = now_ms();
        // (calls left, limit, ms into the window, window length in ms); None: a fresh window.
        let windows: [Option<(u32, u32, u64, u64)>; 2] = if let Some(shared) = &self.shared {
            let (m_left, m_start) = *shared.seen.lock().unwrap_or_else(|e| e.into_inner());
            let (d_left, d_start) = *shared.seen_day.lock().unwrap_or_else(|e| e.into_inner());
            let window = |left: u32, limit: u32, start: u64, len: Duration| {
                let len = len.as_millis().max(1) as u64;
                let into = now_unix.saturating_sub(start);
                // A window that has ended starts afresh with its next call.
                (into < len).then_some((left, limit, into, len))
            };
            [
                window(m_left, shared.minute.0, m_start, shared.minute.1),
                window(d_left, shared.day.0, d_start, shared.day.1),
            ]
        } else {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.minute.roll(now);
            s.day.roll(now);
            let local = |w: &Window| {
                let len = w.nominal.as_millis().max(1) as u64;
                let into = now.duration_since(w.start).as_millis() as u64;
                (w.used > 0 && into < len).then_some((w.remaining(), w.limit, into, len))
            };
            [local(&s.minute), local(&s.day)]
        };
        let wait = windows
            .iter()
            .flatten()
            .filter_map(|&(left, limit, into, len)| {
                let calls = f64::from(left) / f64::from(limit.max(1)) + PACE_BURST;
                let time = 1.0 - into as f64 / len as f64;
                // On pace once the share of time left has fallen to the share of calls left.
                (calls < time)
                    .then(|| Duration::from_millis(((time - calls) * len as f64).ceil() as u64))
            })
            .max();
        metrics::gauge!("xero_client_budget_on_pace", "tenant" => self.tenant.clone())
            .set(if wait.is_none() { 1.0 } else { 0.0 });
        wait
    }
}

/// Breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// No calls until the instant; then one probe.
    Open(Instant),
    /// One probe in progress.
    HalfOpen,
}

/// Per-tenant circuit breaker on consecutive 5xx and timeouts.
#[derive(Debug)]
pub struct Breaker {
    tenant: String,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<(BreakerState, u32)>,
}

impl Breaker {
    /// Closed.
    pub fn new(tenant: &str, threshold: u32, cooldown: Duration) -> Self {
        let b = Self {
            tenant: tenant.to_owned(),
            threshold,
            cooldown,
            state: Mutex::new((BreakerState::Closed, 0)),
        };
        b.gauge(0.0);
        b
    }

    fn gauge(&self, v: f64) {
        metrics::gauge!("xero_client_breaker_state", "tenant" => self.tenant.clone()).set(v);
    }

    /// The state now (an open breaker past its cooldown reports half-open).
    pub fn state(&self) -> BreakerState {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let BreakerState::Open(until) = s.0
            && Instant::now() >= until
        {
            s.0 = BreakerState::HalfOpen;
            self.gauge(0.5);
            tracing::info!(tenant = %self.tenant, "Circuit breaker half-open; probing Xero.");
        }
        s.0
    }

    /// A call succeeded (or failed for a reason that says Xero is up).
    pub fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 != BreakerState::Closed {
            tracing::info!(tenant = %self.tenant, "Circuit breaker closed; Xero answers again.");
            metrics::counter!("xero_client_breaker_transitions_total", "tenant" => self.tenant.clone(), "to" => "closed").increment(1);
        }
        *s = (BreakerState::Closed, 0);
        self.gauge(0.0);
    }

    /// A 5xx or timeout.
    pub fn failure(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 += 1;
        let open = match s.0 {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => s.1 >= self.threshold,
            BreakerState::Open(_) => false,
        };
        if open {
            s.0 = BreakerState::Open(Instant::now() + self.cooldown);
            self.gauge(1.0);
            metrics::counter!("xero_client_breaker_transitions_total", "tenant" => self.tenant.clone(), "to" => "open").increment(1);
            tracing::warn!(tenant = %self.tenant, failures = s.1, cooldown_ms = self.cooldown.as_millis() as u64, "Circuit breaker open; this tenant's events wait in JetStream.");
        }
    }

    /// True while calls must not be made.
    pub fn is_open(&self) -> bool {
        matches!(self.state(), BreakerState::Open(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(minute: u32) -> Limits {
        Limits {
            minute,
            day: 1000,
            concurrent: 5,
            minute_window: Duration::from_secs(60),
            day_window: Duration::from_secs(86400),
        }
    }

    #[test]
    fn minute_window_is_respected_and_corrected() {
        let b = Budget::new("t", limits(3));
        assert!(b.try_take().is_ok());
        b.observe(Instant::now(), Some(1), None);
        assert!(b.try_take().is_ok());
        assert!(matches!(b.try_take(), Err(Wait::Short(_))));
    }

    #[test]
    fn xero_counts_raise_only_the_windows_the_call_was_sent_in() {
        let lens = (60_000, 86_400_000);
        let st = || SharedState {
            ms: 100_000,
            mu: 3,
            ds: 10_000,
            du: 40,
            ..Default::default()
        };
        let floor = |at, minute, day| Floor { minute, day, at };
        let mut s = st();
        assert!(floor(100_500, Some(60), Some(900)).apply(&mut s, lens));
        assert_eq!((s.mu, s.du), (60, 900));
        // Sent before this minute window began: only the day window is the same.
        let mut s = st();
        assert!(floor(99_999, Some(60), Some(900)).apply(&mut s, lens));
        assert_eq!((s.mu, s.du), (3, 900));
        // Never lowers our count; nothing to write.
        let mut s = st();
        assert!(!floor(100_500, Some(2), Some(10)).apply(&mut s, lens));
        assert_eq!((s.mu, s.du), (3, 40));
        // Sent after the window's nominal end: belongs to the next one.
        let mut s = st();
        assert!(!floor(160_000, Some(60), None).apply(&mut s, lens));
        assert!(floor(100_500, Some(60), None).raises(&(3, 40)));
        assert!(!floor(100_500, Some(3), Some(40)).raises(&(3, 40)));
    }

    #[test]
    fn backfill_caps_are_a_share_of_each_window() {
        assert_eq!(
            Caps::of(60, 5000, 0.5),
            Caps {
                minute: 30,
                day: 2500
            }
        );
        assert_eq!(
            Caps::of(60, 5000, 1.0),
            Caps {
                minute: 60,
                day: 5000
            }
        );
        // Rounded down; a tiny minute limit still lets backfill through one call at a time.
        assert_eq!(Caps::of(5, 41, 0.25), Caps { minute: 1, day: 10 });
        // Nothing for backfill: nothing in the minute either.
        assert_eq!(Caps::of(60, 5000, 0.0), Caps { minute: 0, day: 0 });
        assert_eq!(Caps::of(60, 1, 0.5), Caps { minute: 0, day: 0 });
        // Out of range or nonsense shares are clamped.
        assert_eq!(
            Caps::of(60, 100, 7.0),
            Caps {
                minute: 60,
                day: 100
            }
        );
        assert_eq!(Caps::of(60, 100, -1.0), Caps { minute: 0, day: 0 });
        assert_eq!(
            Caps::of(60, 100, f64::NAN),
            Caps {
                minute: 60,
                day: 100
            }
        );
        let c = Caps::of(10, 100, 0.5);
        assert_eq!(c.wait(4, 49), None);
        assert_eq!(c.wait(5, 49), Some(Cap::Minute));
        assert_eq!(c.wait(0, 50), Some(Cap::Day));
    }

    #[tokio::test]
    async fn backfill_stops_at_its_share_and_live_goes_on() {
        let b = Budget::new("t", limits(4)).background_share(0.5);
        let caps = b.backfill;
        assert_eq!(
            caps,
            Caps {
                minute: 2,
                day: 500
            }
        );
        // Backfill takes its two calls of the minute, then waits; live calls still go.
        assert!(as_backfill(async { b.try_take() }).await.is_ok());
        assert!(as_backfill(async { b.try_take() }).await.is_ok());
        assert!(matches!(
            as_backfill(async { b.try_take() }).await,
            Err(Wait::Short(_))
        ));
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        assert!(matches!(b.try_take(), Err(Wait::Short(_))));
        // The day share spent: backfill is held for the day, live is not.
        let b = Budget::new(
            "t",
            Limits {
                day: 4,
                ..limits(60)
            },
        )
        .background_share(0.5);
        assert!(as_backfill(async { b.try_take() }).await.is_ok());
        assert!(as_backfill(async { b.try_take() }).await.is_ok());
        assert!(matches!(
            as_backfill(async { b.try_take() }).await,
            Err(Wait::Backfill(_))
        ));
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        assert!(matches!(b.try_take(), Err(Wait::Day(_))));
    }

    #[test]
    fn calls_spent_faster_than_the_window_renews_are_off_pace() {
        let b = Budget::new(
            "t",
            Limits {
                minute_window: Duration::from_secs(2),
                ..limits(60)
            },
        );
        assert!(b.on_pace(), "a fresh window");
        // The first burst (5 % of 60) goes at once.
        for _ in 0..3 {
            b.try_take().unwrap();
        }
        assert!(b.on_pace(), "within the first burst");
        b.try_take().unwrap();
        assert!(!b.on_pace(), "a fourth call at once is ahead of the window");
        // Half the window later, half its calls may have gone.
        std::thread::sleep(Duration::from_secs(1));
        assert!(b.on_pace(), "the window caught up");
        for _ in 0..40 {
            b.try_take().unwrap();
        }
        assert!(!b.on_pace(), "44 of 60 calls in about half the window");
        // The day window paces too: 5 % of a 100-call day at once, then not.
        let d = Budget::new(
            "t",
            Limits {
                day: 100,
                ..limits(1000)
            },
        );
        for _ in 0..5 {
            d.try_take().unwrap();
        }
        assert!(d.on_pace());
        d.try_take().unwrap();
        assert!(!d.on_pace(), "6 of a 100-call day in its first moments");
    }

    #[tokio::test]
    async fn a_waiting_live_call_takes_the_free_slot_before_a_waiting_background_call() {
        let b = std::sync::Arc::new(Budget::new(
            "t",
            Limits {
                concurrent: 1,
                ..limits(60)
            },
        ));
        let cancel = tokio_util::sync::CancellationToken::new();
        let held = b.acquire(&cancel).await.expect("the one slot");
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let waiter = |lane: Lane| {
            let (b, cancel, order) = (b.clone(), cancel.clone(), order.clone());
            tokio::spawn(in_lane(lane, async move {
                let p = b.acquire(&cancel).await;
                order.lock().unwrap().push(lane);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(p);
            }))
        };
        // The background call waits first, the live call after it.
        let background = waiter(Lane::Reconcile);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let live = waiter(Lane::Live);
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(held);
        background.await.unwrap();
        live.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![Lane::Live, Lane::Reconcile]);
    }

    #[tokio::test]
    async fn backfill_and_reconcile_share_one_background_cap() {
        let b = Budget::new("t", limits(8)).background_share(0.25);
        assert!(
            in_lane(Lane::Reconcile, async { b.try_take() })
                .await
                .is_ok()
        );
        assert!(as_backfill(async { b.try_take() }).await.is_ok());
        assert!(matches!(
            in_lane(Lane::Reconcile, async { b.try_take() }).await,
            Err(Wait::Short(_))
        ));
        assert!(b.try_take().is_ok(), "live goes on");
        assert_eq!(current_lane(), Lane::Live);
    }

    #[test]
    fn shared_state_without_backfill_counts_reads_as_none_used() {
        let st: SharedState = serde_json::from_str(r#"{"ms":1,"mu":2,"ds":3,"du":4}"#).unwrap();
        assert_eq!((st.mu, st.du, st.bm, st.bd), (2, 4, 0, 0));
    }

    #[test]
    fn breaker_opens_after_threshold_and_half_opens() {
        let br = Breaker::new("t", 2, Duration::ZERO);
        br.failure();
        assert_eq!(br.state(), BreakerState::Closed);
        br.failure();
        assert_eq!(br.state(), BreakerState::HalfOpen);
        br.failure();
        br.success();
        assert_eq!(br.state(), BreakerState::Closed);
    }
}
