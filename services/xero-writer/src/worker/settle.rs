//! Settling a batch: ledger writes (compare-and-set), facts, review entries and dead letters.

use crate::compose::{self, Problem};
use crate::ledger::{self, Versioned};
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::batch::KV_PARALLEL;
use crate::worker::work::{Fail, OrderWork};
use async_nats::jetstream::Message;
use futures::StreamExt;
use ledgerline_contract::v1::{
    Fault, Money, ReasonClass, Stage, Suggestion, XeroDocumentKind, XeroFact, XeroVerb,
};
use ledgerline_mapping::Effective;
use ledgerline_platform::dead_letter::DeadLetterBuilder;
use ledgerline_platform::publish::Publisher;
use ledgerline_xero_client::{XeroError, hex};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

impl TenantWorker {
    /// Writes every changed ledger entry (compare-and-set); a lost race means retry later.
    pub(crate) async fn save(&self, groups: &mut [OrderWork]) {
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

    pub(crate) async fn review(
        &self,
        g: &mut OrderWork,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
    ) {
        self.review_fault(g, msg, reason, error, suggestions, None)
            .await;
    }

    /// [`Self::review`] with what exactly is at fault.
    pub(crate) async fn review_fault(
        &self,
        g: &mut OrderWork,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
        fault: Option<Fault>,
    ) {
        // The same key as the XERO facts', so a later write of the order resolves the entry.
        let entity = format!("{}/{}", g.store, g.order_id());
        if !self
            .dead_letter(msg, reason, error, suggestions, fault, &g.store, &entity)
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

    /// [`Self::review`] for a payment, refund or allocation (`kind`) that cannot be applied,
    /// counted in `xero_writer_unapplied_total` once its review entry is stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn review_unapplied(
        &self,
        g: &mut OrderWork,
        kind: &'static str,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
        fault: Option<Fault>,
    ) {
        self.review_fault(g, msg, reason, error, suggestions, fault)
            .await;
        if matches!(g.fail, Some(Fail::Dead)) {
            unapplied(self.tenant(), kind, "review");
        }
    }

    pub(crate) async fn problem(&self, g: &mut OrderWork, msg: &Message, p: Problem) {
        metrics::counter!(m::REVIEWS, "tenant" => self.tenant().to_owned(), "reason" => format!("{:?}", p.reason)).increment(1);
        self.review_fault(
            g,
            msg,
            p.reason,
            &p.error,
            p.suggestions,
            p.fault.map(|f| *f),
        )
        .await;
    }

    pub(crate) async fn call_failed(&self, g: &mut OrderWork, msgs: &[Message], e: &XeroError) {
        match e {
            XeroError::Validation(text) => {
                let text = text.clone();
                let idx = g.order_msg();
                self.review(g, &msgs[idx], ReasonClass::XeroValidation, &text, vec![])
                    .await;
            }
            other => g.transient(other.to_string()),
        }
    }

    pub(crate) fn dry_run(&self, groups: &[OrderWork], mapping: &Effective, org: &OrgSettings) {
        for g in groups {
            if let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.as_ref()) {
                let opts = compose::DocOptions {
                    status: self.shared.config.invoice_status,
                    contact_terms: None,
                    default_due_days: self.shared.config.default_due_days,
                    unknown_tracking: self.shared.config.unknown_tracking,
                };
                match compose::invoice_with(order, "<contact>", &mapping.mapping, org, &opts) {
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

    pub(crate) fn money(&self, g: &OrderWork, amount: Decimal) -> Money {
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
    pub(crate) fn fact(
        &self,
        g: &OrderWork,
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
            // A batch with only refunds carries no order snapshot: the ledger's version is the
            // one Xero has (a credit note's fact then resolves the refund's review entry).
            order_version: g.version().max(g.led.entry.version),
            mapping_revision: g.revision(),
            total: total.map(|t| self.money(g, t)),
            amount_due: due.map(|t| self.money(g, t)),
            tax: None,
            status: status.to_owned(),
            written_at: chrono::Utc::now().to_rfc3339(),
            source_event_id: source,
            ..Default::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn dead_letter(
        &self,
        msg: &Message,
        reason: ReasonClass,
        error: &str,
        suggestions: Vec<Suggestion>,
        fault: Option<Fault>,
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
            fault,
            store,
            entity,
        )
        .await
    }
}

/// Counts a payment, refund or allocation that was not applied, and where it went instead.
pub(crate) fn unapplied(tenant: &str, kind: &'static str, outcome: &'static str) {
    metrics::counter!(m::UNAPPLIED, "tenant" => tenant.to_owned(), "kind" => kind, "outcome" => outcome)
        .increment(1);
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
    fault: Option<Fault>,
    store: &str,
    entity: &str,
) -> bool {
    tracing::warn!(subject = %msg.subject, reason = ?reason, error, "Sent to the review queue.");
    let stored = DeadLetterBuilder::from_message(Stage::XeroWriter, reason, error, msg)
        .tenant(tenant)
        .store(store)
        .entity(entity)
        .fault(fault)
        .suggestions(suggestions)
        .publish(publisher)
        .await;
    match stored {
        Ok(_) => {
            metrics::counter!(m::DEAD_LETTERS, "tenant" => tenant.to_owned(), "reason" => format!("{reason:?}")).increment(1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "Dead letter not stored; the event will be retried.");
            false
        }
    }
}
