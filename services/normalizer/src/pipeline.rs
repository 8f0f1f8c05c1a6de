//! One raw message through the normalizer: transform, publish every canonical event, or
//! dead-letter; the outcome tells the consumer loop to ack or nak.

use crate::transform::{Canonical, Facts, transform_with_facts};
use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use bytes::Bytes;
use ledgerline_contract::v1::{DeadLetter, ReasonClass, Stage};
use ledgerline_contract::{PROTOBUF_CONTENT_TYPE, headers, streams, subjects};
use ledgerline_mapping::{Effective, MappingHandle};
use ledgerline_platform::consume::Outcome;
use ledgerline_platform::dead_letter::DeadLetterBuilder;
use ledgerline_platform::publish::{PublishError, Publisher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What happened to one raw event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Canonical events stored (`new` of them were not already in their stream).
    Published {
        /// Events newly stored.
        new: usize,
        /// Events the stream already had (a redelivery or an unchanged replay).
        duplicate: usize,
    },
    /// Dead-lettered with this reason.
    DeadLettered(ReasonClass),
    /// A transient failure; try again later.
    Retry,
}

/// The normalizer's per-message logic, shared by the service, replay and the benchmark.
#[derive(Debug, Clone)]
pub struct Pipeline {
    publisher: Publisher,
    mapping: MappingHandle,
    retry_delays: Arc<Vec<Duration>>,
    max_deliver: i64,
}

impl Pipeline {
    /// A pipeline publishing through `publisher` under `mapping`.
    pub fn new(publisher: Publisher, mapping: MappingHandle, retry_delays: Vec<Duration>) -> Self {
        Self {
            publisher,
            mapping,
            retry_delays: Arc::new(retry_delays),
            max_deliver: ledgerline_contract::consumers::normalizer().max_deliver,
        }
    }

    /// The current mapping.
    pub fn mapping(&self) -> Arc<Effective> {
        self.mapping.current()
    }

    /// The handle on the mapping (to wait for an overlay revision).
    pub fn mapping_handle(&self) -> &MappingHandle {
        &self.mapping
    }

    /// Handles one message from the durable consumer.
    pub async fn handle_message(&self, message: Message) -> Outcome {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
        let span = tracing::info_span!("normalize", subject = %message.subject, delivered);
        ledgerline_platform::telemetry::join_trace(&span, message.headers.as_ref());
        // `instrument`, not `enter`: a guard held across an await corrupts the span stack
        // when the task moves between threads.
        let handled = self
            .handle(
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
                message.info().map(|i| i.stream_sequence).unwrap_or(0),
                delivered,
            )
            .instrument(span)
            .await;
        match handled {
            Handled::Published { .. } | Handled::DeadLettered(_) => Outcome::Ack,
            Handled::Retry => {
                let idx = (delivered as usize)
                    .saturating_sub(1)
                    .min(self.retry_delays.len() - 1);
                Outcome::Nak(Some(self.retry_delays[idx]))
            }
        }
    }

    /// Handles one raw event stored at RAW `sequence` (also used by replay, with
    /// `delivered = 1`).
    pub async fn handle(
        &self,
        subject: &str,
        raw_headers: Option<&HeaderMap>,
        payload: &Bytes,
        sequence: u64,
        delivered: i64,
    ) -> Handled {
        self.handle_with_ids(subject, raw_headers, payload, sequence, delivered)
            .await
            .0
    }

    /// [`Self::handle`], also giving the ids of the canonical events it stored (or found).
    pub async fn handle_with_ids(
        &self,
        subject: &str,
        raw_headers: Option<&HeaderMap>,
        payload: &Bytes,
        sequence: u64,
        delivered: i64,
    ) -> (Handled, Vec<String>) {
        let effective = self.mapping.current();
        let store_header = raw_headers
            .and_then(|h| h.get(headers::CLARITY_STORE))
            .map(|v| v.as_str());
        let mut facts = Facts::default();
        let started = Instant::now();
        // A panic is a bug on some input: it must not kill the worker, and after max_deliver
        // attempts the input is dead-lettered instead of blocking a slot forever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transform_with_facts(payload, store_header, &effective, &mut facts)
        }));
        metrics::histogram!("ledgerline_normalizer_transform_seconds")
            .record(started.elapsed().as_secs_f64());
        let result = match result {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, delivered, "Transform panicked.");
                if delivered < self.max_deliver {
                    metrics::counter!("ledgerline_normalizer_raw_total", "outcome" => "retry")
                        .increment(1);
                    return (Handled::Retry, vec![]);
                }
                let handled = self
                    .dead_letter(
                        subject,
                        raw_headers,
                        payload,
                        sequence,
                        delivered,
                        &facts,
                        &effective,
                        ReasonClass::Exhausted,
                        format!("transform panicked on every one of {delivered} attempts: {what}"),
                    )
                    .await;
                return (handled, vec![]);
            }
        };
        let events = match result {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, store = %facts.store, entity = %facts.entity_key, "Raw event rejected.");
                let handled = self
                    .dead_letter(
                        subject,
                        raw_headers,
                        payload,
                        sequence,
                        delivered,
                        &facts,
                        &effective,
                        error.reason(),
                        error.to_string(),
                    )
                    .await;
                return (handled, vec![]);
            }
        };
        let mut events = events;
        for e in &mut events {
            e.message.meta_mut().raw_sequence = sequence;
        }
        let ids = events.iter().map(|e| e.event_id.clone()).collect();
        let handled = match self.publish_all(&events, raw_headers).await {
            Ok((new, duplicate)) => {
                metrics::counter!("ledgerline_normalizer_raw_total", "outcome" => "published")
                    .increment(1);
                metrics::counter!("ledgerline_normalizer_events_total", "result" => "new")
                    .increment(new as u64);
                metrics::counter!("ledgerline_normalizer_events_total", "result" => "duplicate")
                    .increment(duplicate as u64);
                Handled::Published { new, duplicate }
            }
            Err(error) if delivered >= self.max_deliver => {
                tracing::error!(%error, delivered, "Publishing failed on the last attempt; dead-lettering.");
                self.dead_letter(
                    subject,
                    raw_headers,
                    payload,
                    sequence,
                    delivered,
                    &facts,
                    &effective,
                    ReasonClass::Exhausted,
                    format!("gave up after {delivered} attempts: {error}"),
                )
                .await
            }
            Err(error) => {
                tracing::warn!(%error, delivered, "Publishing failed; will retry.");
                metrics::counter!("ledgerline_normalizer_raw_total", "outcome" => "retry")
                    .increment(1);
                Handled::Retry
            }
        };
        match handled {
            Handled::Published { .. } => (handled, ids),
            _ => (handled, vec![]),
        }
    }

    /// Publishes events in order; each carries the raw event's trace.
    pub async fn publish_all(
        &self,
        events: &[Canonical],
        raw_headers: Option<&HeaderMap>,
    ) -> Result<(usize, usize), PublishError> {
        let (mut new, mut duplicate) = (0, 0);
        for e in events {
            let mut h = HeaderMap::new();
            if let Some(tp) = raw_headers.and_then(|r| r.get(headers::TRACEPARENT)) {
                h.insert(headers::TRACEPARENT, tp.as_str());
            }
            let published = self
                .publisher
                .publish(
                    e.subject.clone(),
                    &e.event_id,
                    PROTOBUF_CONTENT_TYPE,
                    e.message.schema(),
                    h,
                    Bytes::from(e.message.encode()),
                )
                .await?;
            if published.duplicate {
                duplicate += 1;
            } else {
                new += 1;
            }
        }
        Ok((new, duplicate))
    }

    /// Stores a DLQ entry on `dlq.normalizer.<reason>`.
    pub async fn publish_dead_letter(&self, entry: &DeadLetter) -> Result<(), PublishError> {
        let reason = ReasonClass::try_from(entry.reason_class).unwrap_or(ReasonClass::Unspecified);
        self.publisher
            .publish_proto(
                subjects::dlq(Stage::Normalizer, reason),
                &entry.id,
                entry,
                HeaderMap::new(),
            )
            .await
            .map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        &self,
        subject: &str,
        raw_headers: Option<&HeaderMap>,
        payload: &Bytes,
        sequence: u64,
        delivered: i64,
        facts: &Facts,
        effective: &Effective,
        reason: ReasonClass,
        error: String,
    ) -> Handled {
        let entry = dead_letter_entry(
            subject,
            raw_headers,
            payload,
            sequence,
            delivered,
            facts,
            effective,
            reason,
            error,
        );
        match self.publish_dead_letter(&entry).await {
            Ok(_) => {
                let label = reason
                    .as_str_name()
                    .trim_start_matches("REASON_CLASS_")
                    .to_lowercase();
                metrics::counter!("ledgerline_normalizer_raw_total", "outcome" => "dead_lettered")
                    .increment(1);
                metrics::counter!("ledgerline_normalizer_dead_letters_total", "reason" => label)
                    .increment(1);
                Handled::DeadLettered(reason)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Dead-lettering failed; will retry.");
                metrics::counter!("ledgerline_normalizer_raw_total", "outcome" => "retry")
                    .increment(1);
                Handled::Retry
            }
        }
    }
}

/// The contract's DLQ entry for a raw event (stored at RAW `sequence`) the normalizer could not
/// process. Its id depends on the mapping revision too, so a redelivery stores it once while a
/// failure under a newer mapping is a new entry.
#[allow(clippy::too_many_arguments)]
pub fn dead_letter_entry(
    subject: &str,
    raw_headers: Option<&HeaderMap>,
    payload: &Bytes,
    sequence: u64,
    delivered: i64,
    facts: &Facts,
    effective: &Effective,
    reason: ReasonClass,
    error: String,
) -> DeadLetter {
    let store = if facts.store.is_empty() {
        raw_headers
            .and_then(|h| h.get(headers::CLARITY_STORE))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    } else {
        facts.store.clone()
    };
    DeadLetterBuilder::new(Stage::Normalizer, reason, error, subject, payload)
        .headers(raw_headers)
        .origin(streams::RAW.name, sequence)
        .attempts(delivered)
        .store(&store)
        .entity(&facts.entity_key)
        .occurred_at(&facts.occurred_at)
        .order_number(&facts.order_number)
        .fault(facts.fault.clone())
        .suggestions(facts.suggestions.clone())
        .revision(&effective.revision)
        .build()
}
