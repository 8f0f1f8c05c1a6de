//! One tenant's worker: pulls a batch from the tenant's durable consumer, converges every order
//! in it to its newest snapshot, and writes to Xero in batched requests (one per document kind),
//! then updates the ledger, publishes facts and acks.

use crate::config::{ArchivedContact, DocStatus, LockedPeriod};
use crate::contacts::{self, ContactSpec, Resolved};
use crate::docs::{self, InvoiceDoc, Problem};
use crate::ledger::{self, CreditEntry, PaymentEntry, Versioned};
use crate::org::OrgSettings;
use crate::terms::Terms;
use crate::{Config, metrics_names as m};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message, kv};
use futures::StreamExt;
use ledgerline_contract::v1::{
    DeadLetter, Money, Order, OrderEvent, OrderStatus, Payment, ReasonClass, RefundEvent, Stage,
    Suggestion, XeroDocumentKind, XeroFact, XeroVerb,
};
use ledgerline_contract::{Schema, headers, subjects};
use ledgerline_mapping::{Effective, MappingHandle};
use ledgerline_platform::publish::Publisher;
use ledgerline_xero_client::model::{self, send};
use ledgerline_xero_client::{Client, Element, Need, Refusal, Response, XeroError, hex};
use prost::Message as _;
use reqwest::Method;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod backfill;
mod policies;
use policies::{draft_wait, locked_on, written_date};

/// What every tenant worker shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Configuration.
    pub config: Arc<Config>,
    /// Facts and dead letters.
    pub publisher: Publisher,
    /// LEDGER bucket.
    pub ledger: kv::Store,
    /// CONTACTS bucket.
    pub contacts: kv::Store,
    /// The mapping in force.
    pub mapping: MappingHandle,
    /// Tenants an operator paused (their consumers are not pulled).
    pub paused: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Shared {
    /// True while an operator has paused `tenant`.
    pub fn is_paused(&self, tenant: &str) -> bool {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tenant)
    }
}

/// One tenant's worker.
#[derive(Debug)]
pub struct TenantWorker {
    shared: Shared,
    client: Arc<Client>,
    org: Option<Arc<OrgSettings>>,
    max_deliver: i64,
    /// ContactID → sales payment terms, as last read (kept for the settings lifetime).
    terms: std::sync::Mutex<HashMap<String, (Option<Terms>, std::time::Instant)>>,
}

enum Decoded {
    Order(Box<OrderEvent>),
    Refund(Box<RefundEvent>),
}

#[derive(Debug, Clone)]
enum Fail {
    /// Try again later (nak).
    Transient(String),
    /// Dead-lettered; ack everything of the group.
    Dead,
}

struct Group {
    key: String,
    store: String,
    order: Option<(OrderEvent, usize)>,
    refunds: Vec<(RefundEvent, usize)>,
    msgs: Vec<usize>,
    led: Versioned,
    /// The entry as last read or written (to skip writes that change nothing).
    saved: Option<ledger::Entry>,
    fail: Option<Fail>,
    contact: Option<ContactSpec>,
    inv: Option<InvoiceDoc>,
    facts: Vec<XeroFact>,
    /// The order snapshot needs no more work once the steps succeed.
    converge: bool,
    update: bool,
    void: bool,
    /// Delete the invoice's payments before voiding it.
    remove_payments: bool,
    /// The invoice was written (created, adopted or updated) in this batch.
    fresh: bool,
    /// The change lies in a locked period: credit the invoice and issue a new one.
    reissue: bool,
    /// With `reissue`: the order was cancelled, so the credit note is all.
    credit_only: bool,
    /// Refund messages held back (nak), with why: see [`TenantWorker::hold_refunds`].
    held: Vec<(usize, String)>,
    /// Stream sequence of the message this group's review entry was made from.
    reviewed_seq: Option<u64>,
}

impl Group {
    fn live(&self) -> bool {
        self.fail.is_none()
    }

    fn version(&self) -> u64 {
        self.order
            .as_ref()
            .and_then(|(e, _)| e.order.as_ref())
            .map_or(0, |o| o.version)
    }

    fn revision(&self) -> String {
        self.order
            .as_ref()
            .and_then(|(e, _)| e.meta.as_ref())
            .map(|m| m.mapping_revision.clone())
            .unwrap_or_default()
    }

    fn order_id(&self) -> String {
        match (&self.order, self.refunds.first()) {
            (Some((e, _)), _) => e.order.as_ref().map(|o| o.id.clone()).unwrap_or_default(),
            (None, Some((r, _))) => r.order_id.clone(),
            _ => String::new(),
        }
    }

    /// Refund messages of a reviewed group that are neither written nor the reviewed message.
    fn unsettled_refunds(&self) -> Vec<usize> {
        if !matches!(self.fail, Some(Fail::Dead)) {
            return vec![];
        }
        self.refunds
            .iter()
            .filter(|(r, _)| {
                let rid = r.refund.as_ref().map(|x| x.id.as_str()).unwrap_or_default();
                !self.led.entry.credit_notes.contains_key(rid)
            })
            .map(|(_, i)| *i)
            .collect()
    }

    /// An amount from Xero's answer. An unreadable one fails the group (retried, then
    /// dead-lettered with the reason): it is never read as 0.
    fn amount(&mut self, v: Option<Decimal>, key: &str) -> Option<Decimal> {
        match v.need(key) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "Xero's answer has an unreadable amount.");
                self.transient(e.to_string());
                None
            }
        }
    }

    fn transient(&mut self, why: impl Into<String>) {
        if self.fail.is_none() {
            self.fail = Some(Fail::Transient(why.into()));
        }
    }
}

fn decode(msg: &Message) -> Result<Decoded, (ReasonClass, String)> {
    let schema = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| {
            if msg.subject.ends_with(".refunded") {
                RefundEvent::NAME.to_owned()
            } else {
                OrderEvent::NAME.to_owned()
            }
        });
    if schema == RefundEvent::NAME {
        RefundEvent::decode(msg.payload.as_ref())
            .map(|e| Decoded::Refund(Box::new(e)))
            .map_err(|e| (ReasonClass::Malformed, format!("RefundEvent: {e}")))
    } else if schema == OrderEvent::NAME {
        OrderEvent::decode(msg.payload.as_ref())
            .map(|e| Decoded::Order(Box::new(e)))
            .map_err(|e| (ReasonClass::Malformed, format!("OrderEvent: {e}")))
    } else {
        Err((
            ReasonClass::Unsupported,
            format!("unknown schema {schema:?}"),
        ))
    }
}

/// Waits for the first message, then lingers for more: briefly while the budget is `ample`,
/// up to `max_linger` when it is tight, so batches fill instead of spending calls.
pub(crate) async fn pull_batch(
    consumer: &PullConsumer,
    max: usize,
    ample: bool,
    max_linger: Duration,
    shutdown: &CancellationToken,
) -> Result<Vec<Message>, String> {
    // Wait for the first message, then linger for more: briefly while the budget is ample,
    // longer when it is tight so batches fill instead of spending calls.
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
    let linger = if ample {
        Duration::from_millis(30)
    } else {
        max_linger
    };
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
async fn report_lag(mut consumer: PullConsumer, tenant: String, shutdown: CancellationToken) {
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

/// The order's received payments the ledger has not recorded yet, with their amounts.
fn unrecorded(order: &Order, entry: &ledger::Entry) -> Vec<(Payment, Decimal)> {
    order
        .payments
        .iter()
        .filter(|p| p.received && !entry.payments.contains_key(&p.id))
        .map(|p| {
            let amount = p.amount.as_ref().and_then(|a| docs::dec(&a.amount).ok());
            (p.clone(), amount.unwrap_or_default())
        })
        .collect()
}

/// Counts a payment, refund or allocation that was not applied, and where it went instead.
fn unapplied(tenant: &str, kind: &'static str, outcome: &'static str) {
    metrics::counter!(m::UNAPPLIED, "tenant" => tenant.to_owned(), "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// KV reads/writes and fact publishes in flight at once.
const KV_PARALLEL: usize = 64;

fn nak_delay(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 6) as u32 - 1;
    Duration::from_millis(500 * 2u64.pow(exp)).min(Duration::from_secs(30))
}

/// How often messages being worked on tell JetStream so. The consumer has a BackOff list,
/// which replaces its ack_wait: a first delivery is redelivered 10 s after its last ack or
/// in-progress ack (see `ledgerline_contract::consumers::writer_orders`), so this stays well
/// under that.
const KEEPALIVE: Duration = Duration::from_secs(3);

/// Sends an in-progress ack for each of `msgs()` every [`KEEPALIVE`] until aborted: for a
/// batch in progress, and for held backfill.
fn keep_alive(msgs: impl Fn() -> Vec<Message> + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEPALIVE).await;
            for m in &msgs() {
                let _ = m.ack_with(AckKind::Progress).await;
            }
        }
    })
}

impl TenantWorker {
    /// A worker for the client's tenant.
    pub fn new(shared: Shared, client: Arc<Client>, max_deliver: i64) -> Self {
        Self {
            shared,
            client,
            org: None,
            max_deliver,
            terms: Default::default(),
        }
    }

    fn tenant(&self) -> &str {
        self.client.tenant()
    }

    /// Pulls and converges until `shutdown`; an open breaker stops pulling.
    pub async fn run(mut self, consumer: PullConsumer, shutdown: CancellationToken) {
        let cfg = self.shared.config.clone();
        let tenant = self.tenant().to_owned();
        tracing::info!(%tenant, "Tenant worker started.");
        let mut error_delay = Duration::from_millis(100);
        let lag = tokio::spawn(report_lag(
            consumer.clone(),
            tenant.clone(),
            shutdown.clone(),
        ));
        let lane = self.backfill_lane(&shutdown);
        while !shutdown.is_cancelled() {
            if self.client.breaker.is_open()
                || self.shared.is_paused(&tenant)
                || !self.client.is_connected()
            {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            if matches!(
                self.client.breaker.state(),
                ledgerline_xero_client::budget::BreakerState::HalfOpen
            ) {
                // The probe is a cheap read, not an event: events are delivered only while
                // the breaker is closed, so an outage does not use up their deliveries.
                let probe = self
                    .client
                    .call(reqwest::Method::GET, "/Organisation", &[], None)
                    .await;
                if probe.is_err() {
                    continue;
                }
            }
            if let Err(e) = self.ensure_org(&cfg).await {
                tracing::warn!(%tenant, error = %e, "Cannot read the organisation's settings yet.");
                tokio::select! {
                    _ = tokio::time::sleep(error_delay) => {}
                    _ = shutdown.cancelled() => break,
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                continue;
            }
            error_delay = Duration::from_millis(100);
            let max = cfg.batch_size * 4;
            let msgs = match self.pull(&consumer, max, &shutdown).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "Pull failed; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            if msgs.is_empty() {
                continue;
            }
            if self.shared.is_paused(&tenant) || !self.client.is_connected() {
                // Paused while the pull was waiting: hand them back untouched.
                for m in msgs {
                    let _ = m.ack_with(AckKind::Nak(None)).await;
                }
                continue;
            }
            let msgs = self.route_backfill(msgs, lane.as_ref());
            if !msgs.is_empty() {
                self.process(msgs).await;
            }
        }
        if let Some(lane) = lane {
            lane.finish().await;
        }
        lag.abort();
        tracing::info!(%tenant, "Tenant worker stopped.");
    }

    async fn pull(
        &self,
        consumer: &PullConsumer,
        max: usize,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Message>, String> {
        let budget = &self.client.budget;
        let ample = budget.minute_remaining() * 2 > budget.minute_limit();
        pull_batch(
            consumer,
            max,
            ample,
            self.shared.config.max_linger,
            shutdown,
        )
        .await
    }

    async fn ensure_org(&mut self, cfg: &Config) -> Result<(), XeroError> {
        let stale = self
            .org
            .as_ref()
            .is_none_or(|o| o.fetched.elapsed() >= cfg.settings_refresh);
        if stale {
            match OrgSettings::fetch(&self.client).await {
                Ok(o) => {
                    tracing::info!(tenant = %self.tenant(), accounts = o.accounts.len(), tax_rates = o.tax_rates.len(), "Organisation settings read.");
                    self.org = Some(Arc::new(o));
                }
                // A stale copy is better than stopping.
                Err(e) if self.org.is_some() => {
                    tracing::warn!(tenant = %self.tenant(), error = %e, "Settings refresh failed; keeping the old copy.");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Converges one batch and settles every message in it.
    pub async fn process(&mut self, msgs: Vec<Message>) {
        let mapping = self.shared.mapping.current();
        let org = self.org.clone().expect("org read before processing");
        let tenant = self.tenant().to_owned();
        // Keep the messages alive while Xero is slow or the budget makes us wait.
        let keepalive = {
            let msgs: Vec<Message> = msgs.clone();
            keep_alive(move || msgs.clone())
        };
        let mut outcome: Vec<Option<AckKind>> = vec![None; msgs.len()];
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            let decoded = match decode(msg) {
                Ok(d) => d,
                Err((reason, error)) => {
                    outcome[i] = Some(
                        if self.dead_letter(msg, reason, &error, vec![], "", "").await {
                            AckKind::Term
                        } else {
                            AckKind::Nak(Some(Duration::from_secs(1)))
                        },
                    );
                    continue;
                }
            };
            let (store, order_id) = match &decoded {
                Decoded::Order(e) => {
                    let o = e.order.clone().unwrap_or_default();
                    (o.store.clone(), o.id.clone())
                }
                Decoded::Refund(r) => (
                    r.meta.as_ref().map(|m| m.store.clone()).unwrap_or_default(),
                    r.order_id.clone(),
                ),
            };
            let store = if store.is_empty() {
                msg.subject.split('.').nth(1).unwrap_or_default().to_owned()
            } else {
                store
            };
            let key = ledger::key(&tenant, &store, &order_id);
            let gi = *index.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    key: key.clone(),
                    store: store.clone(),
                    order: None,
                    refunds: vec![],
                    msgs: vec![],
                    led: Versioned::default(),
                    saved: None,
                    fail: None,
                    contact: None,
                    inv: None,
                    facts: vec![],
                    converge: false,
                    update: false,
                    void: false,
                    remove_payments: false,
                    fresh: false,
                    reissue: false,
                    credit_only: false,
                    held: vec![],
                    reviewed_seq: None,
                });
                groups.len() - 1
            });
            let g = &mut groups[gi];
            g.msgs.push(i);
            match decoded {
                Decoded::Order(e) => {
                    let v = e.order.as_ref().map_or(0, |o| o.version);
                    // Highest version wins; on a tie the later event (newer mapping revision).
                    if g.order
                        .as_ref()
                        .is_none_or(|(cur, _)| v >= cur.order.as_ref().map_or(0, |o| o.version))
                    {
                        g.order = Some((*e, i));
                    }
                }
                Decoded::Refund(r) => g.refunds.push((*r, i)),
            }
        }
        metrics::counter!(m::EVENTS, "tenant" => tenant.clone()).increment(msgs.len() as u64);
        // A currency the org lacks, with a configured rate: convert to the base currency.
        let fx = &self.shared.config.fx_rates;
        let lacks = |c: &str| !c.is_empty() && !org.currencies.iter().any(|x| x == c);
        for g in groups.iter_mut() {
            if let Some(o) = g.order.as_mut().and_then(|(e, _)| e.order.as_mut())
                && lacks(&o.currency)
                && let Some(rate) = fx.get(&o.currency)
            {
                *o = docs::convert_order(o, &org.base_currency, *rate);
            }
            for (r, _) in g.refunds.iter_mut() {
                if lacks(&r.currency)
                    && let Some(rate) = fx.get(&r.currency)
                {
                    *r = docs::convert_refund(r, &org.base_currency, *rate);
                }
            }
        }

        // KV round trips run side by side; Xero calls stay batched and sequential.
        let reads: Vec<_> = groups
            .iter()
            .map(|g| {
                let (kv, key) = (self.shared.ledger.clone(), g.key.clone());
                async move { ledger::read(&kv, &key).await }
            })
            .collect();
        let reads: Vec<_> = futures::stream::iter(reads)
            .buffered(KV_PARALLEL)
            .collect()
            .await;
        for (g, r) in groups.iter_mut().zip(reads) {
            match r {
                Ok(v) => {
                    g.saved = Some(v.entry.clone());
                    g.led = v;
                }
                Err(e) => g.transient(format!("ledger read: {e}")),
            }
        }
        self.plan(&mut groups, &msgs, &mapping, &org).await;
        if !self.shared.config.dry_run {
            self.find_unconfirmed_invoices(&mut groups, &msgs, &mapping)
                .await;
            self.contacts_phase(&mut groups, &msgs, &mapping, &org)
                .await;
            self.build_invoices(&mut groups, &msgs, &mapping, &org)
                .await;
            self.create_invoices(&mut groups, &msgs, &org).await;
            self.update_invoices(&mut groups, &msgs, &org).await;
            self.reissue_locked(&mut groups, &msgs, &org).await;
            self.void_invoices(&mut groups, &msgs).await;
            self.save(&mut groups).await;
            self.payments(&mut groups, &msgs, &mapping, &org).await;
            self.refunds(&mut groups, &msgs, &mapping, &org).await;
        } else {
            self.dry_run(&groups, &mapping, &org);
        }
        // Converged snapshots record their version; then ledger, facts, acks.
        for g in groups.iter_mut() {
            if g.live() && g.converge && !self.shared.config.dry_run {
                g.led.entry.version = g.version();
                g.led.entry.mapping_revision = g.revision();
            }
        }
        if !self.shared.config.dry_run {
            self.save(&mut groups).await;
        }
        let publishes: Vec<_> = groups
            .iter()
            // A group sent to review after some writes still announces them.
            .filter(|g| !matches!(g.fail, Some(Fail::Transient(_))))
            .flat_map(|g| g.facts.iter().cloned())
            .map(|f| {
                let publisher = self.shared.publisher.clone();
                let subject = subjects::xero(&tenant, f.kind(), f.verb());
                async move {
                    if let Err(e) = publisher
                        .publish_proto(subject, &f.fact_id, &f, Default::default())
                        .await
                    {
                        tracing::warn!(error = %e, "Fact not published.");
                    }
                }
            })
            .collect();
        futures::stream::iter(publishes)
            .buffer_unordered(KV_PARALLEL)
            .collect::<Vec<()>>()
            .await;
        for g in &groups {
            let unsettled = g.unsettled_refunds();
            for &i in &g.msgs {
                if outcome[i].is_some() {
                    continue;
                }
                let retry = match (&g.fail, g.held.iter().find(|(h, _)| *h == i)) {
                    (Some(Fail::Transient(why)), _) => Some(why.clone()),
                    (_, Some((_, why))) => Some(why.clone()),
                    // A review of the order (or of another refund) is not this refund's:
                    // it is looked at again, never acked unwritten.
                    (Some(Fail::Dead), None)
                        if unsettled.contains(&i)
                            && msgs[i].info().ok().map(|x| x.stream_sequence) != g.reviewed_seq =>
                    {
                        Some(format!(
                            "refund not written: order {} went to review",
                            g.key
                        ))
                    }
                    _ => None,
                };
                outcome[i] = Some(match retry {
                    None => AckKind::Ack,
                    Some(why) => {
                        let delivered = msgs[i].info().map(|i| i.delivered).unwrap_or(1);
                        if delivered >= self.max_deliver
                            && self
                                .dead_letter(
                                    &msgs[i],
                                    ReasonClass::Exhausted,
                                    &why,
                                    vec![],
                                    &g.store,
                                    &g.key,
                                )
                                .await
                        {
                            if g.refunds.iter().any(|(_, r)| *r == i)
                                || g.held.iter().any(|(h, _)| *h == i)
                            {
                                unapplied(&tenant, "refund", "dead_letter");
                            }
                            AckKind::Term
                        } else {
                            tracing::debug!(key = %g.key, why, "Will retry.");
                            AckKind::Nak(Some(nak_delay(delivered)))
                        }
                    }
                });
            }
        }
        keepalive.abort();
        for (msg, kind) in msgs.iter().zip(outcome) {
            let kind = kind.unwrap_or(AckKind::Nak(Some(Duration::from_secs(1))));
            let label = match kind {
                AckKind::Ack => "ack",
                AckKind::Term => "term",
                _ => "nak",
            };
            metrics::counter!(m::OUTCOMES, "tenant" => tenant.clone(), "outcome" => label)
                .increment(1);
            if let Err(e) = msg.ack_with(kind).await {
                tracing::warn!(error = %e, "Ack failed; the event will be redelivered.");
            }
        }
    }

    /// Decides, per order, what (if anything) must be written.
    async fn plan(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        let cfg = &self.shared.config;
        for g in groups.iter_mut() {
            if !g.live() {
                continue;
            }
            let Some((ev, idx)) = g.order.clone() else {
                continue;
            };
            let order = ev.order.clone().unwrap_or_default();
            let e = &g.led.entry;
            let rev = g.revision();
            let seen = order.version < e.version
                || (order.version == e.version && rev == e.mapping_revision);
            if seen && e.payments_in_flight.is_empty() {
                metrics::counter!(m::SKIPPED, "tenant" => self.tenant().to_owned()).increment(1);
                continue;
            }
            if let Some(start) = cfg.start_date
                && docs::day_in(org.timezone, &order.created_at).is_some_and(|d| d < start)
                && g.led.entry.invoice_id.is_empty()
            {
                // Before go-live: an earlier integration (or the bookkeeper) owns it.
                g.led.entry.before_start = true;
                metrics::counter!(m::BEFORE_START, "tenant" => self.tenant().to_owned())
                    .increment(1);
                continue;
            }
            g.converge = true;
            let cancelled = order.status == OrderStatus::Cancelled as i32;
            if cancelled {
                if e.invoice_id.is_empty() || e.voided {
                    continue;
                }
                if e.credited() > Decimal::ZERO
                    || (e.paid() > Decimal::ZERO && !cfg.void_removes_payments)
                {
                    let error = if e.credited() > Decimal::ZERO {
                        format!(
                            "order {} was cancelled but its invoice {} has credit notes allocated; remove the allocations in Xero, then replay",
                            order.number, e.invoice_number
                        )
                    } else {
                        format!(
                            "order {} was cancelled but its invoice {} has payments; remove them in Xero, then replay (or set WRITER_VOID_REMOVES_PAYMENTS)",
                            order.number, e.invoice_number
                        )
                    };
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                    continue;
                }
                let written = if e.date.is_empty() {
                    docs::day_in(org.timezone, &order.created_at)
                } else {
                    chrono::NaiveDate::parse_from_str(&e.date, "%Y-%m-%d").ok()
                };
                if let (Some(lock), Some(date)) = (org.lock_date, written)
                    && date <= lock
                    && !e.is_draft()
                {
                    // Xero will not void a document in a closed period.
                    if cfg.locked_period == LockedPeriod::Review || e.paid() > Decimal::ZERO {
                        let error = format!(
                            "order {} was cancelled but its invoice {} is dated {date}, on or before the organisation's lock date {lock}, where Xero cannot void it; a person decides (credit note, or unlock the period and replay){}",
                            order.number,
                            e.invoice_number,
                            if e.paid() > Decimal::ZERO {
                                "; it also has payments"
                            } else {
                                ", or set WRITER_LOCKED_PERIOD=credit-and-reissue"
                            }
                        );
                        self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                            .await;
                    } else {
                        g.reissue = true;
                        g.credit_only = true;
                    }
                    continue;
                }
                g.remove_payments = e.paid() > Decimal::ZERO;
                g.void = true;
                continue;
            }
            if e.contact_id.is_empty() {
                g.contact = Some(contacts::spec(&order, &mapping.mapping));
            }
        }
    }

    async fn review(
        &self,
        g: &mut Group,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
    ) {
        if !self
            .dead_letter(msg, reason, error, suggestions, &g.store, &g.key)
            .await
        {
            // Never ack what is not stored somewhere.
            g.transient("dead letter not stored");
            return;
        }
        g.fail = Some(Fail::Dead);
        g.reviewed_seq = msg.info().ok().map(|i| i.stream_sequence);
        if g.version() > g.led.entry.reviewed_version {
            g.led.entry.reviewed_version = g.version();
        }
    }

    /// A cancelled order the ledger has no invoice for may still have one: an attempt Xero
    /// applied whose answer (or ledger write) was lost to a crash, with the cancellation then
    /// processed before the redelivered create. Such an invoice is looked up by number and
    /// voided like any other; one call per batch that has such orders.
    async fn find_unconfirmed_invoices(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
    ) {
        let todo: Vec<(usize, String)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.live() && g.converge && !g.void && !g.reissue)
            .filter(|(_, g)| g.led.entry.invoice_id.is_empty() && !g.led.entry.voided)
            .filter_map(|(i, g)| {
                let order = g.order.as_ref().and_then(|(e, _)| e.order.as_ref())?;
                (order.status == OrderStatus::Cancelled as i32)
                    .then(|| (i, mapping.mapping.invoice_number(&docs::values(order, ""))))
            })
            .collect();
        for chunk in todo.chunks(40) {
            let numbers: Vec<&str> = chunk.iter().map(|(_, n)| n.as_str()).collect();
            let list = match self
                .client
                .call(
                    Method::GET,
                    "/Invoices",
                    &[("InvoiceNumbers", numbers.join(",")), ("page", "1".into())],
                    None,
                )
                .await
            {
                Ok(v) => v.invoices,
                Err(e) => {
                    for (i, _) in chunk {
                        self.call_failed(&mut groups[*i], msgs, &e).await;
                    }
                    continue;
                }
            };
            for (i, number) in chunk {
                let g = &mut groups[*i];
                let Some(found) = list.iter().find(|v| {
                    v.invoice_number.eq_ignore_ascii_case(number)
                        && matches!(v.status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED")
                }) else {
                    continue;
                };
                let (Some(total), Some(paid), Some(credited)) = (
                    g.amount(found.total, "Total"),
                    g.amount(found.amount_paid, "AmountPaid"),
                    g.amount(found.amount_credited, "AmountCredited"),
                ) else {
                    continue;
                };
                let e = &mut g.led.entry;
                e.invoice_id = found.invoice_id.clone();
                e.invoice_number = number.clone();
                e.status = found.status.clone();
                e.total = total;
                if paid.is_zero() && credited.is_zero() {
                    tracing::info!(key = %g.key, invoice = %number, "Cancelled order's invoice from an unconfirmed attempt found; voiding it.");
                    g.void = true;
                } else {
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    let error = format!(
                        "order was cancelled and its invoice {number} (not in the ledger: an unconfirmed attempt) has payments or credit in Xero; remove them in Xero, then replay"
                    );
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                }
            }
        }
    }

    /// [`Self::review`] for a payment, refund or allocation (`kind`) that cannot be applied,
    /// counted in `xero_writer_unapplied_total` once its review entry is stored.
    async fn review_unapplied(
        &self,
        g: &mut Group,
        kind: &'static str,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
    ) {
        self.review(g, msg, reason, error, suggestions).await;
        if matches!(g.fail, Some(Fail::Dead)) {
            unapplied(self.tenant(), kind, "review");
        }
    }

    async fn contacts_phase(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        let _ = (mapping, org);
        let specs: Vec<ContactSpec> = groups
            .iter()
            .filter(|g| g.live())
            .filter_map(|g| g.contact.clone())
            .collect();
        if specs.is_empty() {
            return;
        }
        let store_of: HashMap<String, String> = groups
            .iter()
            .filter_map(|g| {
                g.contact
                    .as_ref()
                    .map(|c| (c.contact_number.clone(), g.store.clone()))
            })
            .collect();
        let resolved = contacts::resolve(
            &self.client,
            &self.shared.contacts,
            &store_of,
            specs,
            self.shared.config.batch_size,
        )
        .await;
        for g in groups.iter_mut() {
            let Some(spec) = g.contact.clone() else {
                continue;
            };
            if !g.live() {
                continue;
            }
            match resolved.get(&spec.contact_number) {
                Some(Resolved::Id(id, origin)) => {
                    g.led.entry.contact_id = id.clone();
                    if *origin == contacts::Origin::Created {
                        // Created just now: its terms are the ones we sent (if any).
                        let terms = spec.payment_terms.as_ref().and_then(Terms::sales_of);
                        self.terms
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.clone(), (terms, std::time::Instant::now()));
                    }
                    let verb = match origin {
                        contacts::Origin::Created => XeroVerb::Created,
                        contacts::Origin::Found => XeroVerb::Adopted,
                        // Already announced when it was first written or found.
                        contacts::Origin::Cached => continue,
                    };
                    let f = self.fact(
                        g,
                        XeroDocumentKind::Contact,
                        verb,
                        id,
                        &spec.contact_number,
                        None,
                        None,
                        "ACTIVE",
                    );
                    g.facts.push(f);
                }
                Some(Resolved::Refused(error)) => {
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    self.review(
                        g,
                        &msgs[idx],
                        ReasonClass::XeroValidation,
                        &format!("contact {}: {error}", spec.name),
                        vec![],
                    )
                    .await;
                }
                Some(Resolved::Transient(e)) => g.transient(e.clone()),
                None => g.transient("contact not resolved"),
            }
        }
    }

    async fn build_invoices(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        self.contact_terms(groups, org).await;
        let cfg = &self.shared.config;
        for g in groups.iter_mut() {
            if !g.live() || !g.converge || g.void {
                continue;
            }
            let Some((ev, idx)) = g.order.clone() else {
                continue;
            };
            let order = ev.order.clone().unwrap_or_default();
            if order.status == OrderStatus::Cancelled as i32 {
                continue;
            }
            let contact = g.led.entry.contact_id.clone();
            let opts = docs::DocOptions {
                status: cfg.invoice_status,
                contact_terms: self
                    .terms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&contact)
                    .and_then(|(t, _)| *t),
                default_due_days: cfg.default_due_days,
                unknown_tracking: cfg.unknown_tracking,
            };
            match docs::invoice_with(&order, &contact, &mapping.mapping, org, &opts) {
                Ok(doc) => {
                    if !doc.dropped_tracking.is_empty() {
                        metrics::counter!(m::TRACKING_DROPPED, "tenant" => self.tenant().to_owned()).increment(1);
                        tracing::info!(order = %order.number, dropped = ?doc.dropped_tracking, "Tracking values the organisation lacks were left off.");
                    }
                    let e = &g.led.entry;
                    if e.invoice_id.is_empty() {
                        g.inv = Some(doc);
                    } else if e.content_hash != doc.hash {
                        if e.paid() > Decimal::ZERO || e.credited() > Decimal::ZERO {
                            if self.shared.config.paid_change_review
                                && e.reviewed_version < order.version
                            {
                                let error = format!(
                                    "order {} changed (version {}) after its invoice {} was paid; a person decides (credit note and re-issue, or ignore)",
                                    order.number, order.version, e.invoice_number
                                );
                                self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                                    .await;
                                continue;
                            }
                            // Ignored (by policy or already reviewed): payments still converge.
                        } else if let Some(lock) = locked_on(e, &doc, org) {
                            // Xero refuses any change there: decided here, no call spent.
                            match cfg.locked_period {
                                LockedPeriod::Review => {
                                    let error = format!(
                                        "order {} changed (version {}) but its invoice {} is dated {}, on or before the organisation's lock date {lock}, and Xero refuses changes there; a person decides (credit note and re-issue, or unlock the period and replay), or set WRITER_LOCKED_PERIOD=credit-and-reissue",
                                        order.number,
                                        order.version,
                                        e.invoice_number,
                                        written_date(e, &doc)
                                    );
                                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                                        .await;
                                    continue;
                                }
                                LockedPeriod::CreditAndReissue => {
                                    g.reissue = true;
                                    g.inv = Some(doc);
                                }
                            }
                        } else {
                            g.update = true;
                            g.inv = Some(doc);
                        }
                    }
                }
                Err(p) => {
                    self.problem(g, &msgs[idx], p).await;
                }
            }
        }
    }

    async fn problem(&self, g: &mut Group, msg: &Message, p: Problem) {
        metrics::counter!(m::REVIEWS, "tenant" => self.tenant().to_owned(), "reason" => format!("{:?}", p.reason)).increment(1);
        self.review(g, msg, p.reason, &p.error, p.suggestions).await;
    }

    fn suggestions_for(&self, error: &str, g: &Group, org: &OrgSettings) -> Vec<Suggestion> {
        let lines = g
            .order
            .as_ref()
            .and_then(|(e, _)| e.order.as_ref())
            .map(|o| o.lines.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        let refusal = Refusal::classify(error);
        if let Refusal::UnknownAccountCode { code, .. } = &refusal {
            let kind = lines
                .first()
                .map(|l| ledgerline_contract::v1::LineKind::try_from(l.kind).unwrap_or_default())
                .unwrap_or_default();
            out = org.suggest_accounts(kind, code.as_deref().unwrap_or_default());
        } else if let Refusal::UnknownTaxType { tax_type, .. } = &refusal {
            let rate = lines
                .first()
                .and_then(|l| docs::dec(&l.tax_rate).ok())
                .unwrap_or_default();
            out = org.suggest_tax_types(rate, tax_type.as_deref().unwrap_or_default());
        }
        out
    }

    async fn create_invoices(&self, groups: &mut [Group], msgs: &[Message], org: &OrgSettings) {
        let todo: Vec<usize> = (0..groups.len())
            .filter(|&i| {
                groups[i].live()
                    && groups[i].inv.is_some()
                    && !groups[i].update
                    && !groups[i].reissue
            })
            .collect();
        let mut adopt: Vec<usize> = Vec::new();
        let mut archived: Vec<usize> = Vec::new();
        for unitdp4 in [false, true] {
            let set: Vec<usize> = todo
                .iter()
                .copied()
                .filter(|&i| groups[i].inv.as_ref().is_some_and(|d| d.unitdp4 == unitdp4))
                .collect();
            for chunk in set.chunks(self.shared.config.batch_size) {
                let docs: Vec<&docs::XDocument> = chunk
                    .iter()
                    .map(|&i| &groups[i].inv.as_ref().expect("doc").doc)
                    .collect();
                let els = match self
                    .batch_call(Method::PUT, "/Invoices", "Invoices", &docs, unitdp4)
                    .await
                {
                    Ok(r) => r.invoices,
                    Err(e) => {
                        for &i in chunk {
                            self.call_failed(&mut groups[i], msgs, &e).await;
                        }
                        continue;
                    }
                };
                for (n, &i) in chunk.iter().enumerate() {
                    let g = &mut groups[i];
                    let el = els.get(n).cloned().unwrap_or_default();
                    let Some(refusal) = el.refusal() else {
                        self.invoice_written(g, &el, XeroVerb::Created);
                        continue;
                    };
                    let errors = el.errors().join("; ");
                    if matches!(refusal, Refusal::DuplicateDocumentNumber(_)) {
                        adopt.push(i);
                    } else if matches!(refusal, Refusal::ArchivedContact(_)) {
                        archived.push(i);
                    } else {
                        let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                        let sugg = self.suggestions_for(&errors, g, org);
                        self.review(g, &msgs[idx], ReasonClass::XeroValidation, &errors, sugg)
                            .await;
                    }
                }
            }
        }
        if !adopt.is_empty() {
            self.adopt_invoices(groups, &adopt).await;
        }
        if !archived.is_empty() {
            let restored = self.restore_contacts(groups, msgs, &archived).await;
            self.rewrite_after_restore(groups, msgs, &restored, false)
                .await;
        }
    }

    fn invoice_written(&self, g: &mut Group, el: &model::Invoice, verb: XeroVerb) {
        let (Some(total), Some(due), Some(tax)) = (
            g.amount(el.total, "Total"),
            g.amount(el.amount_due, "AmountDue"),
            g.amount(el.total_tax, "TotalTax"),
        ) else {
            return;
        };
        let doc = g.inv.as_ref().expect("doc");
        let id = el.invoice_id.clone();
        let e = &mut g.led.entry;
        e.invoice_id = id.clone();
        e.invoice_number = doc.number.clone();
        e.content_hash = doc.hash.clone();
        e.date = doc.doc.date.clone();
        e.total = total;
        if !el.status.is_empty() {
            e.status = el.status.clone();
        }
        g.fresh = true;
        let status = el.status.clone();
        let number = doc.number.clone();
        let mut f = self.fact(
            g,
            XeroDocumentKind::Invoice,
            verb,
            &id,
            &number,
            Some(total),
            Some(due),
            &status,
        );
        f.tax = Some(self.money(g, tax));
        g.facts.push(f);
        metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "invoice", "verb" => format!("{verb:?}")).increment(1);
    }

    /// "Invoice # must be unique": it exists (ours after an unconfirmed attempt, or an earlier
    /// integration's). Look it up by number and take it over.
    async fn adopt_invoices(&self, groups: &mut [Group], idx: &[usize]) {
        for chunk in idx.chunks(40) {
            let numbers: Vec<String> = chunk
                .iter()
                .map(|&i| groups[i].inv.as_ref().expect("doc").number.clone())
                .collect();
            let resp = self
                .client
                .call(
                    Method::GET,
                    "/Invoices",
                    &[("InvoiceNumbers", numbers.join(",")), ("page", "1".into())],
                    None,
                )
                .await;
            let list = match resp {
                Ok(v) => v.invoices,
                Err(e) => {
                    for &i in chunk {
                        groups[i].transient(e.to_string());
                    }
                    continue;
                }
            };
            for &i in chunk {
                let g = &mut groups[i];
                let number = g.inv.as_ref().expect("doc").number.clone();
                let found = list.iter().find(|v| {
                    v.invoice_number.eq_ignore_ascii_case(&number) && v.status != "DELETED"
                });
                let Some(found) = found else {
                    g.transient(format!("invoice {number} said to exist but not found"));
                    continue;
                };
                self.invoice_written(g, found, XeroVerb::Adopted);
                // Payments already on it that carry our references are ours.
                let order = g
                    .order
                    .as_ref()
                    .and_then(|(e, _)| e.order.clone())
                    .unwrap_or_default();
                for p in &found.payments {
                    if let Some(src) = order
                        .payments
                        .iter()
                        .find(|sp| docs::payment_reference(&number, &sp.id) == p.reference)
                        && let Some(amount) = g.amount(p.amount, "Amount")
                    {
                        g.led.entry.payments.insert(
                            src.id.clone(),
                            PaymentEntry {
                                payment_id: p.payment_id.clone(),
                                amount,
                            },
                        );
                    }
                }
                // A foreign invoice whose content differs is brought in line when unpaid.
                let (paid, total) = (
                    g.amount(found.amount_paid, "AmountPaid"),
                    g.amount(found.total, "Total"),
                );
                if found.status == "AUTHORISED"
                    && paid.is_some_and(|p| p.is_zero())
                    && total.is_some_and(|t| t != g.inv.as_ref().expect("doc").total)
                {
                    g.update = true;
                }
            }
        }
        let redo: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| groups[i].update && groups[i].live())
            .collect();
        let _ = redo;
    }

    async fn update_invoices(&self, groups: &mut [Group], msgs: &[Message], org: &OrgSettings) {
        let todo: Vec<usize> = (0..groups.len())
            .filter(|&i| groups[i].live() && groups[i].update && groups[i].inv.is_some())
            .collect();
        let mut archived: Vec<usize> = Vec::new();
        for chunk in todo.chunks(self.shared.config.batch_size) {
            let unitdp4 = chunk
                .iter()
                .any(|&i| groups[i].inv.as_ref().is_some_and(|d| d.unitdp4));
            let docs: Vec<docs::XDocument> = chunk
                .iter()
                .map(|&i| {
                    let mut d = groups[i].inv.as_ref().expect("doc").doc.clone();
                    d.invoice_id = Some(groups[i].led.entry.invoice_id.clone());
                    if self.shared.config.invoice_status == DocStatus::Draft {
                        // A draft stays a draft, and one a person approved stays approved.
                        d.status.clear();
                    }
                    d
                })
                .collect();
            let els = match self
                .batch_call(Method::POST, "/Invoices", "Invoices", &docs, unitdp4)
                .await
            {
                Ok(r) => r.invoices,
                Err(e) => {
                    for &i in chunk {
                        self.call_failed(&mut groups[i], msgs, &e).await;
                    }
                    continue;
                }
            };
            for (n, &i) in chunk.iter().enumerate() {
                let g = &mut groups[i];
                let el = els.get(n).cloned().unwrap_or_default();
                let refusal = el.refusal();
                if refusal.is_none() {
                    self.invoice_written(g, &el, XeroVerb::Updated);
                } else if matches!(refusal, Some(Refusal::ArchivedContact(_))) {
                    archived.push(i);
                } else {
                    let errors = el.errors().join("; ");
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    // "lock date": the cached lock date was older than Xero's.
                    let reason = if matches!(
                        refusal,
                        Some(
                            Refusal::HasPaymentsOrCredit(_)
                                | Refusal::InvalidStatus(_)
                                | Refusal::PeriodLocked(_)
                        )
                    ) {
                        ReasonClass::Policy
                    } else {
                        ReasonClass::XeroValidation
                    };
                    let sugg = self.suggestions_for(&errors, g, org);
                    self.review(g, &msgs[idx], reason, &errors, sugg).await;
                }
            }
        }
        if !archived.is_empty() {
            let restored = self.restore_contacts(groups, msgs, &archived).await;
            self.rewrite_after_restore(groups, msgs, &restored, true)
                .await;
        }
    }

    /// Voids the invoices of cancelled orders; a draft cannot be voided in Xero, it is deleted.
    /// When Xero refuses the status change (the ledger's status is stale: a person approved the
    /// draft, or voided it already), the invoice is read once and the right verb tried again.
    async fn void_invoices(&self, groups: &mut [Group], msgs: &[Message]) {
        self.remove_payments(groups, msgs).await;
        let mut todo: Vec<usize> = (0..groups.len())
            .filter(|&i| groups[i].live() && groups[i].void)
            .collect();
        for attempt in 0..2 {
            let mut unsure = Vec::new();
            for chunk in todo.chunks(self.shared.config.batch_size) {
                let wanted: Vec<&'static str> = chunk
                    .iter()
                    .map(|&i| {
                        if groups[i].led.entry.is_draft() {
                            "DELETED"
                        } else {
                            "VOIDED"
                        }
                    })
                    .collect();
                let docs: Vec<send::StatusChange> = chunk
                    .iter()
                    .zip(&wanted)
                    .map(|(&i, st)| send::StatusChange {
                        invoice_id: groups[i].led.entry.invoice_id.clone(),
                        status: (*st).to_owned(),
                    })
                    .collect();
                let els = match self
                    .batch_call(Method::POST, "/Invoices", "Invoices", &docs, false)
                    .await
                {
                    Ok(r) => r.invoices,
                    Err(e) => {
                        for &i in chunk {
                            self.call_failed(&mut groups[i], msgs, &e).await;
                        }
                        continue;
                    }
                };
                for (n, &i) in chunk.iter().enumerate() {
                    let g = &mut groups[i];
                    let el = els.get(n).cloned().unwrap_or_default();
                    let errors = el.errors().join("; ");
                    let refusal = el.refusal();
                    if refusal.is_none() {
                        if let Some(total) = g.amount(el.total, "Total") {
                            self.invoice_gone(g, wanted[n], total);
                        }
                    } else if attempt == 0 && matches!(refusal, Some(Refusal::InvalidStatus(_))) {
                        unsure.push(i);
                    } else {
                        let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                        self.review(g, &msgs[idx], ReasonClass::Policy, &errors, vec![])
                            .await;
                    }
                }
            }
            if unsure.is_empty() {
                break;
            }
            todo = Vec::new();
            for chunk in unsure.chunks(40) {
                let ids: Vec<String> = chunk
                    .iter()
                    .map(|&i| groups[i].led.entry.invoice_id.clone())
                    .collect();
                let list = match self
                    .client
                    .call(
                        Method::GET,
                        "/Invoices",
                        &[("IDs", ids.join(",")), ("page", "1".into())],
                        None,
                    )
                    .await
                {
                    Ok(v) => v.invoices,
                    Err(e) => {
                        for &i in chunk {
                            groups[i].transient(e.to_string());
                        }
                        continue;
                    }
                };
                for &i in chunk {
                    let g = &mut groups[i];
                    let found = list
                        .iter()
                        .find(|x| x.invoice_id == g.led.entry.invoice_id)
                        .cloned()
                        .unwrap_or_default();
                    let status = found.status.clone();
                    match status.as_str() {
                        "VOIDED" | "DELETED" => {
                            let st = if status == "VOIDED" {
                                "VOIDED"
                            } else {
                                "DELETED"
                            };
                            if let Some(total) = g.amount(found.total, "Total") {
                                self.invoice_gone(g, st, total);
                            }
                        }
                        "DRAFT" | "SUBMITTED" | "AUTHORISED" => {
                            g.led.entry.status = status;
                            todo.push(i);
                        }
                        other => {
                            let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                            let error = format!(
                                "order was cancelled but invoice {} is {other:?} in Xero and cannot be voided; remove its payments or credit notes in Xero, then replay",
                                g.led.entry.invoice_number
                            );
                            self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                                .await;
                        }
                    }
                }
            }
        }
    }

    /// Records a voided (or, for a draft, deleted) invoice and its fact.
    fn invoice_gone(&self, g: &mut Group, status: &str, total: Decimal) {
        g.led.entry.voided = true;
        g.led.entry.status = status.to_owned();
        let id = g.led.entry.invoice_id.clone();
        let number = g.led.entry.invoice_number.clone();
        let verb = if status == "DELETED" {
            XeroVerb::Deleted
        } else {
            XeroVerb::Voided
        };
        let f = self.fact(
            g,
            XeroDocumentKind::Invoice,
            verb,
            &id,
            &number,
            Some(total),
            Some(Decimal::ZERO),
            status,
        );
        g.facts.push(f);
        metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "invoice", "verb" => format!("{verb:?}")).increment(1);
    }

    /// One batched write of `docs` as `{"<collection>": [...]}` to `path` (for `/Invoices`:
    /// `PUT` creates, `POST` updates and voids), `summarizeErrors=false` and `unitdp=4` when asked,
    /// with Xero's per-element results in order.
    async fn batch_call<T: serde::Serialize>(
        &self,
        method: Method,
        path: &str,
        collection: &str,
        docs: &[T],
        unitdp4: bool,
    ) -> Result<Response, XeroError> {
        let mut query = vec![("summarizeErrors", "false".to_owned())];
        if unitdp4 {
            query.push(("unitdp", "4".into()));
        }
        self.client
            .call(method, path, &query, Some(send::envelope(collection, docs)))
            .await
    }

    /// Reads a credit note; returns it with its live allocations to `invoice_id`.
    async fn credit_note_allocations(
        &self,
        credit_note_id: &str,
        invoice_id: &str,
    ) -> Result<(model::CreditNote, Vec<model::Allocation>), XeroError> {
        let v = self
            .client
            .call(
                Method::GET,
                &format!("/CreditNotes/{credit_note_id}"),
                &[],
                None,
            )
            .await?;
        let cn = v.credit_notes.into_iter().next().unwrap_or_default();
        let mine = cn
            .allocations
            .iter()
            .filter(|a| a.credits(invoice_id))
            .cloned()
            .collect();
        Ok((cn, mine))
    }

    /// Reads a credit note and records in the ledger (with Allocation and Payment facts) what
    /// Xero has allocated from it to the order's invoice, and refunded with our reference,
    /// beyond what the ledger knows. `Some` is the updated entry when there was more.
    async fn credit_in_xero(
        &self,
        g: &mut Group,
        rid: &str,
        c: &CreditEntry,
    ) -> Result<Option<CreditEntry>, XeroError> {
        let (cn, mine) = self
            .credit_note_allocations(&c.credit_note_id, &g.led.entry.invoice_id)
            .await?;
        let allocated: Decimal = mine
            .iter()
            .map(|a| a.amount.need("Amount"))
            .sum::<Result<Decimal, _>>()?;
        let reference = format!("{} refund", c.number);
        let refunds: Vec<&model::Payment> = cn
            .payments
            .iter()
            .filter(|p| p.reference == reference && p.status != "DELETED")
            .collect();
        let refunded: Decimal = refunds
            .iter()
            .map(|p| p.amount.need("Amount"))
            .sum::<Result<Decimal, _>>()?;
        if allocated <= c.allocated && refunded <= c.refunded {
            return Ok(None);
        }
        let mut known = c.clone();
        if allocated > c.allocated {
            let found = allocated - c.allocated;
            known.allocated = allocated;
            let id = mine
                .last()
                .map(|a| a.allocation_id.clone())
                .unwrap_or_default();
            tracing::info!(credit_note = %c.number, invoice = %g.led.entry.invoice_number, amount = %found, "Allocation from an unconfirmed attempt found in Xero; not made again.");
            let f = self.fact(
                g,
                XeroDocumentKind::Allocation,
                XeroVerb::Created,
                &id,
                &c.number,
                Some(found),
                None,
                "AUTHORISED",
            );
            g.facts.push(f);
        }
        if refunded > c.refunded {
            let found = refunded - c.refunded;
            known.refunded = refunded;
            let id = refunds
                .last()
                .map(|p| p.payment_id.clone())
                .unwrap_or_default();
            tracing::info!(credit_note = %c.number, amount = %found, "Refund payment from an unconfirmed attempt found in Xero; not made again.");
            let f = self.fact(
                g,
                XeroDocumentKind::Payment,
                XeroVerb::Recorded,
                &id,
                rid,
                Some(found),
                None,
                "AUTHORISED",
            );
            g.facts.push(f);
        }
        if let Some(ce) = g.led.entry.credit_notes.get_mut(rid) {
            *ce = known.clone();
        }
        Ok(Some(known))
    }

    async fn call_failed(&self, g: &mut Group, msgs: &[Message], e: &XeroError) {
        match e {
            XeroError::Validation(text) => {
                let text = text.clone();
                let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                self.review(g, &msgs[idx], ReasonClass::XeroValidation, &text, vec![])
                    .await;
            }
            other => g.transient(other.to_string()),
        }
    }

    /// Writes every changed ledger entry (compare-and-set); a lost race means retry later.
    async fn save(&self, groups: &mut [Group]) {
        // Unread (the read failed) or unchanged entries need no write.
        let todo: Vec<(usize, String, Versioned)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.saved.as_ref().is_some_and(|s| *s != g.led.entry))
            .map(|(i, g)| (i, g.key.clone(), g.led.clone()))
            .collect();
        let writes: Vec<_> = todo
            .into_iter()
            .map(|(i, key, mut v)| {
                let kv = self.shared.ledger.clone();
                async move {
                    let r = ledger::write(&kv, &key, &mut v).await;
                    (i, v, r)
                }
            })
            .collect();
        let results: Vec<(usize, Versioned, Result<(), String>)> = futures::stream::iter(writes)
            .buffer_unordered(KV_PARALLEL)
            .collect()
            .await;
        for (i, v, r) in results {
            let g = &mut groups[i];
            match r {
                Ok(()) => {
                    g.led = v;
                    g.saved = Some(g.led.entry.clone());
                }
                Err(e) => {
                    tracing::warn!(key = %g.key, error = %e, "Ledger changed underneath; will retry.");
                    g.transient(format!("ledger compare-and-set: {e}"));
                    g.facts.clear();
                    // Stop writing this order in this batch: another writer owns it now.
                    g.saved = None;
                }
            }
        }
    }

    async fn payments(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        // Payments sent before without a confirmed answer: find them before paying again.
        let unsure: Vec<usize> = (0..groups.len())
            .filter(|&i| {
                groups[i].live()
                    && !groups[i].led.entry.payments_in_flight.is_empty()
                    && !groups[i].led.entry.invoice_id.is_empty()
            })
            .collect();
        for chunk in unsure.chunks(40) {
            let ids: Vec<String> = chunk
                .iter()
                .map(|&i| groups[i].led.entry.invoice_id.clone())
                .collect();
            match self
                .client
                .call(
                    Method::GET,
                    "/Invoices",
                    &[("IDs", ids.join(",")), ("page", "1".into())],
                    None,
                )
                .await
            {
                Ok(v) => {
                    for &i in chunk {
                        let g = &mut groups[i];
                        let inv = v
                            .invoices
                            .iter()
                            .find(|x| x.invoice_id == g.led.entry.invoice_id)
                            .cloned()
                            .unwrap_or_default();
                        let number = g.led.entry.invoice_number.clone();
                        for src in std::mem::take(&mut g.led.entry.payments_in_flight) {
                            let reference = docs::payment_reference(&number, &src);
                            let found = inv.payments.iter().find(|p| p.reference == reference);
                            if let Some(p) = found {
                                let Some(amount) = g.amount(p.amount, "Amount") else {
                                    // Looked up again next time.
                                    g.led.entry.payments_in_flight.push(src);
                                    continue;
                                };
                                g.led.entry.payments.insert(
                                    src,
                                    PaymentEntry {
                                        payment_id: p.payment_id.clone(),
                                        amount,
                                    },
                                );
                            }
                        }
                    }
                }
                Err(e) => {
                    for &i in chunk {
                        groups[i].transient(e.to_string());
                    }
                }
            }
        }
        self.make_room_for_payments(groups, msgs).await;
        // What to pay: each payment in full, or a review entry saying why not.
        let mut todo: Vec<(usize, String, docs::XPayment)> = Vec::new();
        for (i, g) in groups.iter_mut().enumerate() {
            if !g.live() || !g.converge || g.led.entry.invoice_id.is_empty() || g.led.entry.voided {
                continue;
            }
            let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.clone()) else {
                continue;
            };
            if order.status == OrderStatus::Cancelled as i32 {
                continue;
            }
            let mut due = g.led.entry.amount_due();
            let pending = unrecorded(&order, &g.led.entry);
            if let Some((p, _)) = pending.first()
                && g.fresh
                && g.led.entry.is_draft()
            {
                // Just written as a draft: Xero would refuse the payment, so no call is spent.
                let error = draft_wait(
                    &order.number,
                    &format!("payment {}", p.id),
                    &g.led.entry.invoice_number,
                );
                let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                self.review_unapplied(
                    g,
                    "payment",
                    &msgs[idx],
                    ReasonClass::Policy,
                    &error,
                    vec![],
                )
                .await;
                continue;
            }
            for (p, amount) in &pending {
                let amount = *amount;
                if amount.is_zero() {
                    // Nothing received, nothing to record.
                    continue;
                }
                if amount < Decimal::ZERO || amount > due {
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    let error = format!(
                        "payment {} of {amount} for order {} cannot be recorded: invoice {} owes {due} (total {}, paid {}, credited {}); a person decides (a payment or allocation made in Xero, or an order total changed after payment), then replays",
                        p.id,
                        order.number,
                        g.led.entry.invoice_number,
                        g.led.entry.total,
                        g.led.entry.paid(),
                        g.led.entry.credited()
                    );
                    self.review_unapplied(
                        g,
                        "payment",
                        &msgs[idx],
                        ReasonClass::Policy,
                        &error,
                        vec![],
                    )
                    .await;
                    break;
                }
                due -= amount;
                let account = mapping.mapping.payment_account(&p.method).to_owned();
                if !org.payment_account(&account) {
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    let sugg: Vec<Suggestion> = org
                        .accounts
                        .iter()
                        .filter(|a| a.active && a.payments)
                        .map(|a| Suggestion {
                            field: "Account.Code".into(),
                            current_value: account.clone(),
                            suggested_value: a.code.clone(),
                            score: if a.kind == "BANK" { 0.8 } else { 0.6 },
                            reason: format!("\"{}\" accepts payments", a.name),
                        })
                        .collect();
                    self.review_unapplied(
                        g,
                        "payment",
                        &msgs[idx],
                        ReasonClass::Mapping,
                        &format!(
                            "payment account {account:?} for method {:?} cannot receive payments",
                            p.method
                        ),
                        sugg,
                    )
                    .await;
                    break;
                }
                let mut date = docs::day_in(org.timezone, &p.received_at).unwrap_or_else(|| {
                    chrono::Utc::now().with_timezone(&org.timezone).date_naive()
                });
                if let Some(lock) = org.lock_date.filter(|l| date <= *l) {
                    // Money received in a closed period is recorded on its first open day.
                    date = lock.succ_opt().unwrap_or(lock);
                }
                let reference = docs::payment_reference(&g.led.entry.invoice_number, &p.id);
                g.led.entry.payments_in_flight.push(p.id.clone());
                todo.push((
                    i,
                    p.id.clone(),
                    docs::payment(&g.led.entry.invoice_id, &account, date, amount, &reference),
                ));
            }
        }
        todo.retain(|(i, _, _)| groups[*i].live());
        if todo.is_empty() {
            return;
        }
        // Record the intent first, so a crash between Xero and the ledger is looked up, not repeated.
        self.save(groups).await;
        todo.retain(|(i, _, _)| groups[*i].live());
        for chunk in todo.chunks(self.shared.config.batch_size) {
            let body: Vec<&docs::XPayment> = chunk.iter().map(|(_, _, p)| p).collect();
            let els = match self
                .batch_call(Method::PUT, "/Payments", "Payments", &body, false)
                .await
            {
                Ok(r) => r.payments,
                Err(e) => {
                    for (i, _, _) in chunk {
                        let g = &mut groups[*i];
                        self.call_failed(g, msgs, &e).await;
                    }
                    continue;
                }
            };
            for (n, (i, src, p)) in chunk.iter().enumerate() {
                let g = &mut groups[*i];
                let el = els.get(n).cloned().unwrap_or_default();
                g.led.entry.payments_in_flight.retain(|x| x != src);
                if el.ok() {
                    let id = el.payment_id.clone();
                    g.led.entry.payments.insert(
                        src.clone(),
                        PaymentEntry {
                            payment_id: id.clone(),
                            amount: p.amount,
                        },
                    );
                    // Only the fact's "amount due" depends on it: unreadable leaves it out.
                    let due = el.invoice.as_ref().and_then(|i| i.amount_due);
                    if let Some(inv) = el.invoice.as_ref().filter(|i| !i.status.is_empty()) {
                        // A draft a person has approved since.
                        g.led.entry.status = inv.status.clone();
                    }
                    let number = g.led.entry.invoice_number.clone();
                    let f = self.fact(
                        g,
                        XeroDocumentKind::Payment,
                        XeroVerb::Recorded,
                        &id,
                        &number,
                        Some(p.amount),
                        due,
                        "AUTHORISED",
                    );
                    g.facts.push(f);
                    metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "payment", "verb" => "Recorded").increment(1);
                } else {
                    let errors = el.errors().join("; ");
                    if g.live() {
                        let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                        let draft = g.led.entry.is_draft()
                            && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)));
                        let (reason, error) = if draft {
                            let number = g
                                .order
                                .as_ref()
                                .and_then(|(e, _)| e.order.as_ref())
                                .map(|o| o.number.clone())
                                .unwrap_or_default();
                            (
                                ReasonClass::Policy,
                                draft_wait(
                                    &number,
                                    &format!("payment {src}"),
                                    &g.led.entry.invoice_number,
                                ),
                            )
                        } else {
                            (
                                ReasonClass::XeroValidation,
                                format!("payment {src}: {errors}"),
                            )
                        };
                        self.review_unapplied(g, "payment", &msgs[idx], reason, &error, vec![])
                            .await;
                    }
                }
            }
        }
    }

    /// The refund rule: a refund is written against the order as it stood when the refund was
    /// made (`RefundEvent.order_version`) or later, never against an older view. Until the
    /// ledger (or this batch) has written that version, payments included, the refund is held:
    /// nak'd with a growing delay, no call spent. A refund that overtakes its order's payment
    /// (a redelivery, a crash) so waits for the payment instead of taking the invoice's balance
    /// as credit. If that order version is in review, the refund goes to review too; if it
    /// never comes, the refund is dead-lettered when its deliveries run out.
    async fn hold_refunds(&self, groups: &mut [Group], msgs: &[Message]) {
        for g in groups.iter_mut() {
            if !g.live() || g.refunds.is_empty() || g.led.entry.before_start {
                continue;
            }
            let written = if g.converge {
                g.led.entry.version.max(g.version())
            } else {
                g.led.entry.version
            };
            let mut in_review = None;
            let mut ready = Vec::new();
            for (ev, idx) in std::mem::take(&mut g.refunds) {
                let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                let wanted = ev.order_version;
                if wanted <= written || g.led.entry.credit_notes.contains_key(&rid) {
                    ready.push((ev, idx));
                } else if g.led.entry.reviewed_version >= wanted {
                    in_review.get_or_insert((idx, rid.clone(), wanted, ev.order_number.clone()));
                    ready.push((ev, idx));
                } else {
                    tracing::info!(key = %g.key, refund = %rid, wanted, written, "Refund held until the order version it was made against is written.");
                    metrics::counter!(m::REFUNDS_HELD, "tenant" => self.tenant().to_owned())
                        .increment(1);
                    g.held.push((
                        idx,
                        format!(
                            "refund {rid} was made against order {} version {wanted}, but version {written} is the newest written to Xero; held so the payments it follows are recorded first",
                            ev.order_number
                        ),
                    ));
                }
            }
            g.refunds = ready;
            if let Some((idx, rid, wanted, number)) = in_review {
                let error = format!(
                    "refund {rid} was made against order {number} version {wanted}, which is in review; replay it once that version is written"
                );
                self.review_unapplied(g, "refund", &msgs[idx], ReasonClass::Policy, &error, vec![])
                    .await;
            }
        }
    }

    /// Payments are money received, so each is recorded in full. Credit that an earlier, stale
    /// view allocated to the invoice (a refund written before the payment it followed: events
    /// older than the hold rule, or a ledger from before it) would leave too little due: those
    /// allocations are removed here, and the refunds phase then pays the freed credit back to
    /// the customer, which is what the store's state says happened.
    async fn make_room_for_payments(&self, groups: &mut [Group], msgs: &[Message]) {
        for g in groups.iter_mut() {
            if !g.live() || !g.converge || g.led.entry.invoice_id.is_empty() || g.led.entry.voided {
                continue;
            }
            let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.as_ref()) else {
                continue;
            };
            if order.status == OrderStatus::Cancelled as i32 {
                continue;
            }
            let incoming: Decimal = unrecorded(order, &g.led.entry)
                .iter()
                .map(|(_, amount)| amount)
                .sum();
            let mut short = incoming - g.led.entry.amount_due();
            let allocated: Vec<(String, CreditEntry)> = g
                .led
                .entry
                .credit_notes
                .iter()
                .filter(|(_, c)| c.allocated > Decimal::ZERO)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            for (rid, c) in allocated {
                if short <= Decimal::ZERO || !g.live() {
                    break;
                }
                match self.undo_allocation(g, &rid, &c).await {
                    Ok(freed) => short -= freed,
                    Err(e) => {
                        if matches!(e, XeroError::Validation(_)) {
                            unapplied(self.tenant(), "allocation", "review");
                        }
                        self.call_failed(g, msgs, &e).await;
                    }
                }
            }
        }
    }

    /// Removes every allocation of credit note `c` to the order's invoice; returns the amount
    /// freed. The credit entry is left undone, so its credit is refunded instead.
    async fn undo_allocation(
        &self,
        g: &mut Group,
        rid: &str,
        c: &CreditEntry,
    ) -> Result<Decimal, XeroError> {
        let (_, mine) = self
            .credit_note_allocations(&c.credit_note_id, &g.led.entry.invoice_id)
            .await?;
        let mut freed = Decimal::ZERO;
        for a in mine {
            let id = a.allocation_id.clone();
            let amount = a.amount.need("Amount")?;
            self.client
                .call(
                    Method::DELETE,
                    &format!("/CreditNotes/{}/Allocations/{id}", c.credit_note_id),
                    &[],
                    None,
                )
                .await?;
            freed += amount;
            tracing::info!(key = %g.key, credit_note = %c.number, invoice = %g.led.entry.invoice_number, %amount, "Credit allocation undone so the order's payment can be recorded in full; the credit is refunded instead.");
            metrics::counter!(m::ALLOCATIONS_UNDONE, "tenant" => self.tenant().to_owned())
                .increment(1);
            let f = self.fact(
                g,
                XeroDocumentKind::Allocation,
                XeroVerb::Deleted,
                &id,
                &c.number,
                Some(amount),
                None,
                "DELETED",
            );
            g.facts.push(f);
        }
        if let Some(ce) = g.led.entry.credit_notes.get_mut(rid) {
            // Xero's record decides: what is still allocated after the removals is none.
            ce.allocated = Decimal::ZERO;
            ce.done = false;
        }
        Ok(freed)
    }

    async fn refunds(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        self.hold_refunds(groups, msgs).await;
        // Credit notes to create.
        let mut todo: Vec<(usize, usize, docs::CreditDoc)> = Vec::new();
        for (gi, g) in groups.iter_mut().enumerate() {
            if !g.live() || g.refunds.is_empty() {
                continue;
            }
            if g.led.entry.invoice_id.is_empty() {
                if !g.led.entry.before_start {
                    g.transient("refund before its invoice exists");
                }
                continue;
            }
            for ri in 0..g.refunds.len() {
                let (ev, idx) = g.refunds[ri].clone();
                let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                if g.led.entry.credit_notes.contains_key(&rid) {
                    continue;
                }
                match docs::credit_note_with(
                    &ev,
                    &g.store,
                    &g.led.entry.contact_id,
                    &mapping.mapping,
                    org,
                    self.shared.config.invoice_status,
                ) {
                    Ok(d) => todo.push((gi, ri, d)),
                    Err(p) => {
                        self.review_unapplied(
                            g,
                            "refund",
                            &msgs[idx],
                            p.reason,
                            &p.error,
                            p.suggestions,
                        )
                        .await;
                        break;
                    }
                }
            }
        }
        todo.retain(|(gi, _, _)| groups[*gi].live());
        // A second pass writes again, as POST, the credit notes refused for an archived
        // contact that was made active again (the refused PUT's answer is stored under its key).
        let mut pass_todo = todo;
        // Credit notes created by this batch's own calls: no earlier allocation can exist.
        let mut fresh_credit: std::collections::HashSet<String> = Default::default();
        for pass in 0..2 {
            let mut archived: Vec<(usize, usize, docs::CreditDoc)> = Vec::new();
            for chunk in pass_todo.chunks(self.shared.config.batch_size) {
                let unitdp4 = chunk.iter().any(|(_, _, d)| d.unitdp4);
                let body: Vec<&docs::XDocument> = chunk.iter().map(|(_, _, d)| &d.doc).collect();
                let method = if pass == 0 { Method::PUT } else { Method::POST };
                let els = match self
                    .batch_call(method, "/CreditNotes", "CreditNotes", &body, unitdp4)
                    .await
                {
                    Ok(r) => r.credit_notes,
                    Err(e) => {
                        for (gi, _, _) in chunk {
                            let g = &mut groups[*gi];
                            self.call_failed(g, msgs, &e).await;
                        }
                        continue;
                    }
                };
                for (n, (gi, ri, d)) in chunk.iter().enumerate() {
                    let g = &mut groups[*gi];
                    if !g.live() {
                        continue;
                    }
                    let (ev, idx) = g.refunds[*ri].clone();
                    let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                    let mut el = els.get(n).cloned().unwrap_or_default();
                    let errors = el.errors().join("; ");
                    let created = el.ok();
                    let refusal = el.refusal();
                    if pass == 0 && matches!(refusal, Some(Refusal::ArchivedContact(_))) {
                        archived.push((*gi, *ri, d.clone()));
                        continue;
                    }
                    if matches!(refusal, Some(Refusal::DuplicateDocumentNumber(_))) {
                        match self
                            .client
                            .call(
                                Method::GET,
                                "/CreditNotes",
                                &[("where", format!("CreditNoteNumber==\"{}\"", d.number))],
                                None,
                            )
                            .await
                        {
                            Ok(v) => el = v.credit_notes.into_iter().next().unwrap_or_default(),
                            Err(e) => {
                                g.transient(e.to_string());
                                continue;
                            }
                        }
                    } else if !created {
                        self.review_unapplied(
                            g,
                            "refund",
                            &msgs[idx],
                            ReasonClass::XeroValidation,
                            &format!("credit note {}: {errors}", d.number),
                            vec![],
                        )
                        .await;
                        continue;
                    }
                    let id = el.credit_note_id.clone();
                    if id.is_empty() {
                        g.transient("credit note not found after 'must be unique'");
                        continue;
                    }
                    if created {
                        fresh_credit.insert(id.clone());
                    }
                    g.led.entry.credit_notes.insert(
                        rid,
                        CreditEntry {
                            credit_note_id: id.clone(),
                            number: d.number.clone(),
                            total: d.total,
                            method: ev
                                .refund
                                .as_ref()
                                .map(|r| r.method.clone())
                                .unwrap_or_default(),
                            ..Default::default()
                        },
                    );
                    let f = self.fact(
                        g,
                        XeroDocumentKind::CreditNote,
                        XeroVerb::Created,
                        &id,
                        &d.number,
                        Some(d.total),
                        None,
                        &d.doc.status,
                    );
                    g.facts.push(f);
                    metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "credit_note", "verb" => "Created").increment(1);
                }
            }
            if archived.is_empty() {
                break;
            }
            let mut gis: Vec<usize> = archived.iter().map(|(gi, _, _)| *gi).collect();
            gis.dedup();
            let restored = self.restore_contacts(groups, msgs, &gis).await;
            pass_todo = archived
                .into_iter()
                .filter(|(gi, _, _)| restored.contains(gi))
                .collect();
        }
        self.save(groups).await;
        // Allocate to the invoice what it still owes; refund the rest as a payment.
        let mut refunds: Vec<(usize, String, docs::XPayment)> = Vec::new();
        #[allow(clippy::needless_range_loop)] // `groups[gi]` is re-borrowed per credit note.
        for gi in 0..groups.len() {
            if !groups[gi].live() {
                continue;
            }
            let pending: Vec<String> = groups[gi]
                .led
                .entry
                .credit_notes
                .iter()
                .filter(|(_, c)| !c.done)
                .map(|(k, _)| k.clone())
                .collect();
            for rid in pending {
                let g = &mut groups[gi];
                let mut c = g.led.entry.credit_notes[&rid].clone();
                if c.total - c.allocated - c.refunded > Decimal::ZERO
                    && !fresh_credit.contains(&c.credit_note_id)
                {
                    // An earlier attempt may have been applied without our knowing (answer
                    // lost, writer restarted, beyond Xero's idempotency window): Xero's record
                    // of the credit note decides, so nothing is allocated or refunded twice.
                    match self.credit_in_xero(g, &rid, &c).await {
                        Ok(Some(known)) => c = known,
                        Ok(None) => {}
                        Err(e) => {
                            self.call_failed(g, msgs, &e).await;
                            continue;
                        }
                    }
                }
                let due = g.led.entry.amount_due();
                let left = c.total - c.allocated - c.refunded;
                let alloc = left.min(due);
                let date = chrono::Utc::now().with_timezone(&org.timezone).date_naive();
                if alloc > Decimal::ZERO {
                    let body = send::envelope(
                        "Allocations",
                        &[send::Allocation {
                            invoice: send::InvoiceRef {
                                invoice_id: g.led.entry.invoice_id.clone(),
                            },
                            amount: alloc,
                            date: date.to_string(),
                        }],
                    );
                    match self
                        .client
                        .call(
                            Method::PUT,
                            &format!("/CreditNotes/{}/Allocations", c.credit_note_id),
                            &[("summarizeErrors", "false".into())],
                            Some(body),
                        )
                        .await
                    {
                        Ok(v) => {
                            let el = v.allocations.into_iter().next().unwrap_or_default();
                            if el.ok() {
                                if let Some(ce) = g.led.entry.credit_notes.get_mut(&rid) {
                                    ce.allocated += alloc;
                                }
                                let id = el.allocation_id.clone();
                                let f = self.fact(
                                    g,
                                    XeroDocumentKind::Allocation,
                                    XeroVerb::Created,
                                    &id,
                                    &c.number,
                                    Some(alloc),
                                    None,
                                    "AUTHORISED",
                                );
                                g.facts.push(f);
                            } else {
                                let errors = el.errors().join("; ");
                                let idx = g.refunds.first().map_or(g.msgs[0], |(_, i)| *i);
                                let (reason, error) = if self.shared.config.invoice_status
                                    == DocStatus::Draft
                                    && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)))
                                {
                                    (
                                        ReasonClass::Policy,
                                        format!(
                                            "refund {rid}: credit note {} waits for approval: it or invoice {} is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero allocates only approved documents; approve them in Xero, then replay this event",
                                            c.number, g.led.entry.invoice_number
                                        ),
                                    )
                                } else {
                                    (
                                        ReasonClass::XeroValidation,
                                        format!("allocation of {}: {errors}", c.number),
                                    )
                                };
                                self.review_unapplied(
                                    g,
                                    "allocation",
                                    &msgs[idx],
                                    reason,
                                    &error,
                                    vec![],
                                )
                                .await;
                                continue;
                            }
                        }
                        Err(e) => {
                            self.call_failed(g, msgs, &e).await;
                            continue;
                        }
                    }
                }
                let rest = left - alloc.max(Decimal::ZERO);
                if rest > Decimal::ZERO {
                    let method = g
                        .refunds
                        .iter()
                        .find(|(r, _)| r.refund.as_ref().is_some_and(|x| x.id == rid))
                        .and_then(|(r, _)| r.refund.as_ref().map(|x| x.method.clone()))
                        .unwrap_or_else(|| c.method.clone());
                    let account = mapping.mapping.payment_account(&method).to_owned();
                    refunds.push((
                        gi,
                        rid.clone(),
                        docs::XPayment {
                            invoice: None,
                            credit_note: Some(send::CreditNoteRef {
                                credit_note_id: c.credit_note_id.clone(),
                            }),
                            account: send::AccountRef { code: account },
                            date: date.to_string(),
                            amount: rest,
                            reference: format!("{} refund", c.number),
                        },
                    ));
                } else if let Some(ce) = g.led.entry.credit_notes.get_mut(&rid) {
                    ce.done = true;
                }
            }
        }
        for chunk in refunds.chunks(self.shared.config.batch_size) {
            let body: Vec<&docs::XPayment> = chunk.iter().map(|(_, _, p)| p).collect();
            let els = match self
                .batch_call(Method::PUT, "/Payments", "Payments", &body, false)
                .await
            {
                Ok(r) => r.payments,
                Err(e) => {
                    for (gi, _, _) in chunk {
                        groups[*gi].transient(e.to_string());
                    }
                    continue;
                }
            };
            for (n, (gi, rid, p)) in chunk.iter().enumerate() {
                let g = &mut groups[*gi];
                let el = els.get(n).cloned().unwrap_or_default();
                if el.ok() {
                    if let Some(ce) = g.led.entry.credit_notes.get_mut(rid) {
                        ce.refunded += p.amount;
                        ce.done = true;
                    }
                    let id = el.payment_id.clone();
                    let f = self.fact(
                        g,
                        XeroDocumentKind::Payment,
                        XeroVerb::Recorded,
                        &id,
                        rid,
                        Some(p.amount),
                        None,
                        "AUTHORISED",
                    );
                    g.facts.push(f);
                } else if g.live() {
                    let errors = el.errors().join("; ");
                    let idx = g.msgs[0];
                    let (reason, error) = if self.shared.config.invoice_status == DocStatus::Draft
                        && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)))
                    {
                        (
                            ReasonClass::Policy,
                            format!(
                                "refund {rid} waits for approval: its credit note is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero pays back only approved credit notes; approve it in Xero, then replay this event"
                            ),
                        )
                    } else {
                        (
                            ReasonClass::XeroValidation,
                            format!("refund payment {rid}: {errors}"),
                        )
                    };
                    self.review_unapplied(g, "refund", &msgs[idx], reason, &error, vec![])
                        .await;
                }
            }
        }
    }

    fn dry_run(&self, groups: &[Group], mapping: &Effective, org: &OrgSettings) {
        for g in groups {
            if let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.as_ref()) {
                let opts = docs::DocOptions {
                    status: self.shared.config.invoice_status,
                    contact_terms: None,
                    default_due_days: self.shared.config.default_due_days,
                    unknown_tracking: self.shared.config.unknown_tracking,
                };
                match docs::invoice_with(order, "<contact>", &mapping.mapping, org, &opts) {
                    Ok(d) => {
                        tracing::info!(order = %order.number, invoice = %serde_json::to_string(&d.doc).unwrap_or_default(), "Dry run: would write this invoice.")
                    }
                    Err(p) => {
                        tracing::info!(order = %order.number, error = %p.error, "Dry run: would send this order to review.")
                    }
                }
            }
        }
    }

    fn money(&self, g: &Group, amount: Decimal) -> Money {
        let currency = g
            .order
            .as_ref()
            .and_then(|(e, _)| e.order.as_ref())
            .map(|o| o.currency.clone())
            .or_else(|| g.refunds.first().map(|(r, _)| r.currency.clone()))
            .unwrap_or_default();
        Money {
            amount: amount.to_string(),
            currency,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fact(
        &self,
        g: &Group,
        kind: XeroDocumentKind,
        verb: XeroVerb,
        xero_id: &str,
        number: &str,
        total: Option<Decimal>,
        due: Option<Decimal>,
        status: &str,
    ) -> XeroFact {
        let source = g
            .order
            .as_ref()
            .and_then(|(e, _)| e.meta.as_ref())
            .or_else(|| g.refunds.first().and_then(|(r, _)| r.meta.as_ref()))
            .map(|m| m.event_id.clone())
            .unwrap_or_default();
        let id_src = format!(
            "{}|{:?}|{:?}|{xero_id}|{}|{}",
            self.tenant(),
            kind,
            verb,
            g.version(),
            g.led.entry.content_hash
        );
        XeroFact {
            fact_id: format!("xf-{}", &hex(&Sha256::digest(id_src.as_bytes()))[..40]),
            tenant_id: self.tenant().to_owned(),
            kind: kind as i32,
            verb: verb as i32,
            xero_id: xero_id.to_owned(),
            number: number.to_owned(),
            store: g.store.clone(),
            order_key: format!("{}/{}", g.store, g.order_id()),
            order_version: g.version(),
            mapping_revision: g.revision(),
            total: total.map(|t| self.money(g, t)),
            amount_due: due.map(|t| self.money(g, t)),
            tax: None,
            status: status.to_owned(),
            written_at: chrono::Utc::now().to_rfc3339(),
            source_event_id: source,
        }
    }

    async fn dead_letter(
        &self,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
        store: &str,
        entity: &str,
    ) -> bool {
        dead_letter(
            &self.shared.publisher,
            self.tenant(),
            msg,
            reason,
            error,
            suggestions,
            store,
            entity,
        )
        .await
    }
}

/// Stores a dead letter for `msg` on DLQ; false if it could not be stored (then do not ack).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn dead_letter(
    publisher: &Publisher,
    tenant: &str,
    msg: &Message,
    reason: ReasonClass,
    error: &str,
    suggestions: Vec<Suggestion>,
    store: &str,
    entity: &str,
) -> bool {
    let mut original_headers = BTreeMap::new();
    if let Some(h) = &msg.headers {
        for (k, vs) in h.iter() {
            if let Some(v) = vs.first() {
                original_headers.insert(k.to_string(), v.as_str().to_owned());
            }
        }
    }
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    let id_src = format!(
        "{}|{}|{:?}|{error}",
        msg.subject,
        hex(&Sha256::digest(&msg.payload)),
        reason
    );
    let dl = DeadLetter {
        id: format!("dl-{}", &hex(&Sha256::digest(id_src.as_bytes()))[..40]),
        stage: Stage::XeroWriter as i32,
        reason_class: reason as i32,
        error: error.to_owned(),
        original_subject: msg.subject.to_string(),
        original_headers: original_headers.into_iter().collect(),
        original_payload: msg.payload.to_vec(),
        attempts: delivered.max(0) as u32,
        suggestions,
        failed_at: chrono::Utc::now().to_rfc3339(),
        store: store.to_owned(),
        entity_key: entity.to_owned(),
        tenant: tenant.to_owned(),
    };
    tracing::warn!(subject = %msg.subject, reason = ?reason, error, "Sent to the review queue.");
    metrics::counter!(m::DEAD_LETTERS, "tenant" => tenant.to_owned(), "reason" => format!("{reason:?}")).increment(1);
    let subject = subjects::dlq(Stage::XeroWriter, reason);
    match publisher
        .publish_proto(subject, &dl.id, &dl, Default::default())
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "Dead letter not stored; the event will be retried.");
            false
        }
    }
}
