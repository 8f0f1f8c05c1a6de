//! What may enter the RAW stream, and the one function that puts it there.
//!
//! A [`RawEvent`] can only be made from a [`Verified`] webhook or by the resync module from the
//! store's own REST API, so publishing an unverified payload does not compile.

use crate::AppState;
use crate::Outcome;
use async_nats::HeaderMap;
use bytes::Bytes;
use ledgerline_contract::{JSON_CONTENT_TYPE, RAW_CLARITY_SCHEMA, headers, subjects};
use ledgerline_platform::publish::PublishError;
use ledgerline_platform::standard_webhooks::Verified;

/// An event allowed into RAW.
#[derive(Debug)]
pub struct RawEvent {
    id: String,
    store: String,
    topic: String,
    body: Bytes,
    headers: HeaderMap,
}

impl RawEvent {
    /// A webhook whose signature was verified.
    pub fn webhook(verified: Verified, store: &str, topic: &str, attempt: Option<String>) -> Self {
        let (id, timestamp, body) = verified.into_parts();
        let mut h = HeaderMap::new();
        h.insert(headers::WEBHOOK_ID, id.as_str());
        h.insert(headers::WEBHOOK_TIMESTAMP, timestamp.to_string().as_str());
        if let Some(a) = attempt {
            h.insert(headers::CLARITY_ATTEMPT, a.as_str());
        }
        h.insert(headers::ORIGIN, "webhook");
        Self::new(id, store, topic, body, h)
    }

    /// An order read from the store's REST API by an authenticated operator's resync.
    pub(crate) fn resync(id: String, store: &str, topic: &str, body: Bytes) -> Self {
        let mut h = HeaderMap::new();
        h.insert(headers::WEBHOOK_ID, id.as_str());
        h.insert(headers::ORIGIN, "resync");
        Self::new(id, store, topic, body, h)
    }

    fn new(id: String, store: &str, topic: &str, body: Bytes, mut h: HeaderMap) -> Self {
        h.insert(headers::CLARITY_TOPIC, topic);
        h.insert(headers::CLARITY_STORE, store);
        h.insert(
            headers::RECEIVED_AT,
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .as_str(),
        );
        Self {
            id,
            store: store.to_owned(),
            topic: topic.to_owned(),
            body,
            headers: h,
        }
    }

    /// The event id (also the `Nats-Msg-Id`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Stores `event` in RAW and waits for the acknowledgement.
pub async fn store_raw(state: &AppState, event: RawEvent) -> Result<Outcome, PublishError> {
    if state.client.connection_state() != async_nats::connection::State::Connected {
        metrics::counter!("ingest_publish_failures_total", "reason" => "disconnected").increment(1);
        return Err(PublishError::Other("not connected to NATS".to_owned()));
    }
    let subject = subjects::raw_clarity(&event.store, &event.topic);
    let started = std::time::Instant::now();
    let result = state
        .publisher
        .publish(
            subject,
            &event.id,
            JSON_CONTENT_TYPE,
            RAW_CLARITY_SCHEMA,
            event.headers,
            event.body,
        )
        .await;
    state.meters.publish(started.elapsed().as_secs_f64());
    match result {
        Ok(p) if p.duplicate => Ok(Outcome::Duplicate),
        Ok(_) => Ok(Outcome::Stored),
        Err(e) => {
            metrics::counter!("ingest_publish_failures_total", "reason" => e.label()).increment(1);
            Err(e)
        }
    }
}
