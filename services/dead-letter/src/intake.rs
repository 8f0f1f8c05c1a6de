//! What comes in: dead letters from DLQ become entries (a replay that failed again folds into
//! the entry it replays), and XERO facts resolve the entries of orders since written.

use crate::actions::Actions;
use crate::alerts::Alerts;
use crate::decode;
use crate::entry::{Entry, Status, SuggestionView, now};
use crate::store::{Store, StoreError};
use async_nats::jetstream::Message;
use bytes::Bytes;
use ledgerline_contract::v1::{
    DeadLetter, ReasonClass, Stage, XeroDocumentKind, XeroFact, XeroUsageAlert, XeroVerb,
};
use ledgerline_contract::{Schema, headers};
use ledgerline_platform::consume::Outcome;
use prost::Message as _;
use std::time::Duration;

/// Handles DLQ and XERO messages.
#[derive(Debug, Clone)]
pub struct Intake {
    store: Store,
    alerts: Alerts,
    /// Replays what waited for an order that is now written.
    actions: Actions,
}

/// The fault of a refund the writer held because its order was in review.
const REFUND_AWAITS_ORDER: &str = "refund_awaits_order";

impl Intake {
    /// Intake into the store of `actions`.
    pub fn new(actions: Actions, alerts: Alerts) -> Self {
        Self {
            store: actions.store().clone(),
            alerts,
            actions,
        }
    }

    /// One DLQ message.
    pub async fn dead_letter(&self, msg: Message) -> Outcome {
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let dl = DeadLetter::decode(msg.payload.as_ref()).unwrap_or_else(|e| DeadLetter {
            // Kept, never dropped: an operator sees it and can discard it.
            id: format!("dl-undecodable-{seq}"),
            stage: Stage::Unspecified as i32,
            reason_class: ReasonClass::Malformed as i32,
            error: format!("not a DeadLetter message: {e}"),
            original_subject: msg.subject.to_string(),
            original_payload: msg.payload.to_vec(),
            original_stream: ledgerline_contract::streams::DLQ.name.to_owned(),
            original_sequence: seq,
            ..Default::default()
        });
        match self.take(dl, seq).await {
            Ok(()) => Outcome::Ack,
            Err(error) => {
                tracing::warn!(%error, seq, "Dead letter not taken in yet; will retry.");
                Outcome::Nak(Some(Duration::from_secs(1)))
            }
        }
    }

    async fn take(&self, dl: DeadLetter, seq: u64) -> Result<(), StoreError> {
        metrics::counter!("dead_letter_received_total").increment(1);
        // A replay that failed again: the entry it replays opens again, with the new error.
        if let Some(of) = dl.original_headers.get(headers::REPLAY_OF)
            && self.store.get(of).is_some()
        {
            let suggestions: Vec<SuggestionView> =
                dl.suggestions.iter().map(SuggestionView::from).collect();
            self.store
                .update(of, None, |e| {
                    if e.audit.iter().any(|a| a.detail.contains(&dl.id)) {
                        return Ok(()); // this dead letter is folded in already
                    }
                    e.occurrences += 1;
                    e.attempts += dl.attempts.max(1);
                    e.last_seen = now();
                    e.error = dl.error.clone();
                    if !suggestions.is_empty() {
                        e.suggestions = suggestions.clone();
                    }
                    if e.status.replayable() {
                        e.set_status(Status::Open);
                    }
                    e.audit(
                        "system",
                        "failed_again",
                        format!("the replay failed again ({}): {}", dl.id, dl.error),
                    );
                    Ok(())
                })
                .await?;
            self.alerts.open_count(self.store.open_total()).await;
            return Ok(());
        }
        if self.store.get(&dl.id).is_some() {
            return Ok(()); // a redelivery
        }
        let schema = dl
            .original_headers
            .get(headers::SCHEMA)
            .map(String::as_str)
            .unwrap_or_default();
        let facts = decode::facts(schema, &dl.original_payload);
        let entry = Entry::from_dead_letter(&dl, seq, facts);
        let (issue, key, store, error) = (
            entry.issue.clone(),
            entry.issue_key.clone(),
            entry.store.clone(),
            entry.error.clone(),
        );
        let id = entry.id.clone();
        if self
            .store
            .create(entry, Bytes::from(dl.original_payload))
            .await?
            && self.store.others_open_in(&issue, &id) == 0
        {
            self.alerts.issue_opened(&issue, &key, &store, &error).await;
        }
        self.alerts.open_count(self.store.open_total()).await;
        Ok(())
    }

    /// One XERO message: a write fact, or a usage alert.
    pub async fn fact(&self, msg: Message) -> Outcome {
        let schema = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::SCHEMA))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        if schema == XeroUsageAlert::NAME {
            if let Ok(a) = XeroUsageAlert::decode(msg.payload.as_ref()) {
                self.alerts.usage(usage_text(&a)).await;
            }
            return Outcome::Ack;
        }
        let Ok(fact) = XeroFact::decode(msg.payload.as_ref()) else {
            return Outcome::Ack;
        };
        match self.resolve(&fact).await {
            Ok(()) => Outcome::Ack,
            Err(error) => {
                tracing::warn!(%error, "Fact not applied yet; will retry.");
                Outcome::Nak(Some(Duration::from_secs(1)))
            }
        }
    }

    /// Resolves the entries this write settles: an invoice write settles the order's entries,
    /// a credit-note write its refunds', at the written version or older.
    async fn resolve(&self, fact: &XeroFact) -> Result<(), StoreError> {
        let refund = match fact.kind() {
            XeroDocumentKind::Invoice => false,
            XeroDocumentKind::CreditNote => true,
            _ => return Ok(()),
        };
        if !matches!(
            fact.verb(),
            XeroVerb::Created | XeroVerb::Updated | XeroVerb::Adopted | XeroVerb::Recorded
        ) || fact.order_key.is_empty()
        {
            return Ok(());
        }
        for v in self.store.awaiting(&fact.order_key) {
            if v.entry.is_refund() != refund
                || (v.entry.order_version > 0 && fact.order_version < v.entry.order_version)
            {
                continue;
            }
            let detail = format!(
                "written to Xero: {} {} (order version {}, mapping {})",
                if refund { "credit note" } else { "invoice" },
                fact.number,
                fact.order_version,
                fact.mapping_revision
            );
            self.store
                .update(&v.entry.id, None, |e| {
                    if !e.status.replayable() {
                        return Ok(());
                    }
                    e.set_status(Status::Resolved);
                    e.audit("system", "resolved", detail.clone());
                    Ok(())
                })
                .await?;
            metrics::counter!("dead_letter_actions_total", "action" => "auto_resolve").increment(1);
        }
        if !refund {
            self.replay_waiting_refunds(fact).await;
        }
        Ok(())
    }

    /// The order is written now: its refunds that waited for it (held by the writer while the
    /// order was in review) are replayed, audited as `system`. One that fails again comes back
    /// as an entry of its own issue.
    async fn replay_waiting_refunds(&self, fact: &XeroFact) {
        let waiting = self.store.awaiting(&fact.order_key);
        for v in waiting.iter().filter(|v| {
            v.entry.fault.code == REFUND_AWAITS_ORDER
                && v.entry.status.is_open()
                && fact.order_version >= v.entry.order_version
        }) {
            match self.actions.replay(&v.entry.id, "system", None, 0).await {
                Ok(r) => {
                    tracing::info!(entry = %v.entry.id, outcome = %r.outcome, order = %fact.number, "Replayed a refund that waited for its order.")
                }
                Err(error) => {
                    tracing::warn!(entry = %v.entry.id, %error, "A refund that waited for its order could not be replayed yet.")
                }
            }
        }
    }
}

fn usage_text(a: &XeroUsageAlert) -> String {
    let what = match a.kind() {
        ledgerline_contract::v1::XeroUsageKind::DayCalls => {
            format!(
                "tenant {} has used {}% of its Xero calls for the day",
                a.tenant_id, a.percent
            )
        }
        _ => format!(
            "app {} has used {}% of its Xero egress for {}",
            a.app, a.percent, a.window
        ),
    };
    format!(
        ":chart_with_upwards_trend: {what} ({} of {}){}",
        a.used,
        a.allowance,
        if a.held {
            "; work is held until the window resets"
        } else {
            ""
        }
    )
}
