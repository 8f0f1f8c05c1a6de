//! One tenant's worker: pulls a batch from the tenant's durable consumer, converges every order
//! in it to its newest snapshot, and writes to Xero in batched requests (one per document kind),
//! then updates the ledger, publishes facts and acks.

mod backfill;
pub(crate) mod batch;
mod plan;
pub(crate) mod settle;
pub(crate) mod steps;
pub(crate) mod work;
mod write;

use crate::compose;
use crate::ledger::{self, Versioned};
use crate::org::OrgSettings;
use crate::worker::batch::{KV_PARALLEL, keep_alive, linger, nak_delay, pull_batch, report_lag};
use crate::worker::plan::{Plan, Skip, Write};
use crate::worker::settle::unapplied;
use crate::worker::work::{Decoded, Fail, OrderWork, decode};
use crate::{Config, metrics_names as m};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message, kv};
use futures::StreamExt;
use ledgerline_contract::v1::ReasonClass;
use ledgerline_contract::{headers, subjects};
use ledgerline_mapping::MappingHandle;
use ledgerline_platform::publish::Publisher;
use ledgerline_platform::telemetry;
use ledgerline_xero_client::{Client, XeroError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    /// The tenant's contact desk (shared with the customer path).
    desk: crate::contacts::Desk,
    org: Option<Arc<OrgSettings>>,
    max_deliver: i64,
    /// ContactID → sales payment terms, as last read (kept for the settings lifetime).
    terms: crate::terms::KnownTerms,
}

impl TenantWorker {
    /// A worker for the client's tenant.
    pub fn new(
        shared: Shared,
        client: Arc<Client>,
        desk: crate::contacts::Desk,
        max_deliver: i64,
    ) -> Self {
        Self {
            terms: desk.terms().clone(),
            shared,
            client,
            desk,
            org: None,
            max_deliver,
        }
    }

    pub(crate) fn tenant(&self) -> &str {
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

    pub(crate) async fn pull(
        &self,
        consumer: &PullConsumer,
        max: usize,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Message>, String> {
        // Batches sized by the budget (see `batch::linger`).
        let (max, linger) = linger(&self.client.budget, max, self.shared.config.max_linger);
        pull_batch(consumer, max, linger, shutdown).await
    }

    pub(crate) async fn ensure_org(&mut self, cfg: &Config) -> Result<(), XeroError> {
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

    /// Converges a batch of messages. Each message gets a span that continues the trace in its
    /// `traceparent` (one webhook, one trace across every service); the Xero calls made for the
    /// batch are spans of their own, linked to the messages they work for.
    pub async fn process(&mut self, msgs: Vec<Message>) {
        let tenant = self.tenant().to_owned();
        let spans: Vec<tracing::Span> = msgs
            .iter()
            .map(|m| {
                let span = tracing::info_span!(
                    "xero_writer.message",
                    tenant = %tenant,
                    subject = %m.subject,
                    stream_seq = m.info().map(|i| i.stream_sequence).unwrap_or_default(),
                    batch = msgs.len(),
                );
                telemetry::join_trace(&span, m.headers.as_ref());
                span
            })
            .collect();
        let links = telemetry::Links::of(&spans);
        telemetry::with_links(links, self.process_batch(msgs)).await;
        drop(spans);
    }

    /// Converges one batch and settles every message in it.
    async fn process_batch(&mut self, msgs: Vec<Message>) {
        // A replay after a fix names the overlay revision holding the fix: write it under the
        // mapping that has read that far (bounded; past it the mapping in force is used, and an
        // entry that fails again goes back to the review queue).
        let needed = msgs
            .iter()
            .filter_map(|m| m.headers.as_ref()?.get(headers::OVERLAY_REVISION))
            .filter_map(|v| v.as_str().parse::<u64>().ok())
            .max();
        if let Some(revision) = needed
            && !self
                .shared
                .mapping
                .overlay_at_least(revision, Duration::from_secs(10))
                .await
        {
            tracing::warn!(
                revision,
                "Mapping overlay not read that far in time; writing under the mapping in force."
            );
        }
        let mapping = self.shared.mapping.current();
        let org = self.org.clone().expect("org read before processing");
        let tenant = self.tenant().to_owned();
        // Keep the messages alive while Xero is slow or the budget makes us wait.
        let keepalive = {
            let msgs: Vec<Message> = msgs.clone();
            keep_alive(move || msgs.clone())
        };
        let mut outcome: Vec<Option<AckKind>> = vec![None; msgs.len()];
        let mut groups: Vec<OrderWork> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            let decoded = match decode(msg) {
                Ok(d) => d,
                Err((reason, error)) => {
                    outcome[i] = Some(
                        if self
                            .dead_letter(msg, reason, &error, vec![], None, "", "")
                            .await
                        {
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
                groups.push(OrderWork {
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
                    plan: Plan::Skip(Skip::NoSnapshot),
                    written: None,
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
                *o = compose::convert_order(o, &org.base_currency, *rate);
            }
            for (r, _) in g.refunds.iter_mut() {
                if lacks(&r.currency)
                    && let Some(rate) = fx.get(&r.currency)
                {
                    *r = compose::convert_refund(r, &org.base_currency, *rate);
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
            self.write_invoices(&mut groups, &msgs, &org, Write::Create)
                .await;
            // After create: an adopted invoice whose content differs is updated too.
            self.write_invoices(&mut groups, &msgs, &org, Write::Update)
                .await;
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
            if g.live() && g.plan.converges() && !self.shared.config.dry_run {
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
                let subject = subjects::xero(&tenant, f.kind(), f.verb(), &f.order_key);
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
                                    None,
                                    &g.store,
                                    &format!("{}/{}", g.store, g.order_id()),
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
}
