//! Publishing to JetStream: every publish awaits its PubAck and carries `Nats-Msg-Id`,
//! `traceparent`, `content-type` and the schema name.

use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishErrorKind;
use bytes::Bytes;
use ledgerline_contract::{PROTOBUF_CONTENT_TYPE, Schema, headers};
use std::time::Duration;

/// What the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Stream that stored it.
    pub stream: String,
    /// Its sequence (the original's, for a duplicate).
    pub sequence: u64,
    /// True when the stream already had this `Nats-Msg-Id` inside its duplicate window.
    pub duplicate: bool,
}

/// Why a publish did not get a positive PubAck. Nothing is stored in any of these cases
/// (a timeout may have stored it: retry with the same id to find out, dedup makes that safe).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No stream captures the subject.
    #[error("no stream captures subject {0}")]
    NoStream(String),
    /// No PubAck in time: NATS is down or slow.
    #[error("no acknowledgement from JetStream within {0:?}")]
    Timeout(Duration),
    /// The stream refused the message (full, too large, ...).
    #[error("JetStream refused the message: {0}")]
    Refused(String),
    /// The connection failed.
    #[error("publish failed: {0}")]
    Other(String),
}

impl PublishError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoStream(_) => "no_stream",
            Self::Timeout(_) => "timeout",
            Self::Refused(_) => "refused",
            Self::Other(_) => "other",
        }
    }
}

/// Publishes with the house headers and waits for the PubAck.
#[derive(Debug, Clone)]
pub struct Publisher {
    js: Context,
    ack_timeout: Duration,
    /// Registered once: the macro would look the key up again on every publish.
    duration: metrics::Histogram,
}

impl Publisher {
    /// A publisher whose publishes give up after `ack_timeout` (made after the metrics
    /// recorder is installed, or its timings go nowhere).
    pub fn new(js: Context, ack_timeout: Duration) -> Self {
        Self {
            js,
            ack_timeout,
            duration: metrics::histogram!("ledgerline_publish_duration_seconds"),
        }
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &Context {
        &self.js
    }

    /// [`Self::publish_proto`] for an alert that must not be lost to a brief outage: up to five
    /// attempts, 200 ms doubling between them; false if all failed (`what` names it in the log).
    pub async fn publish_proto_retrying<M: Schema>(
        &self,
        subject: String,
        msg_id: &str,
        message: &M,
        what: &str,
    ) -> bool {
        for attempt in 0..5u32 {
            match self
                .publish_proto(subject.clone(), msg_id, message, HeaderMap::new())
                .await
            {
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot publish the {what} yet.");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }

    /// Publishes a protobuf message; its schema name comes from [`Schema::NAME`].
    pub async fn publish_proto<M: Schema>(
        &self,
        subject: String,
        msg_id: &str,
        message: &M,
        extra: HeaderMap,
    ) -> Result<Published, PublishError> {
        let payload = Bytes::from(message.encode_to_vec());
        self.publish(
            subject,
            msg_id,
            PROTOBUF_CONTENT_TYPE,
            M::NAME,
            extra,
            payload,
        )
        .await
    }

    /// Publishes any payload with the house headers added to `extra`.
    pub async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        content_type: &str,
        schema: &str,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, PublishError> {
        headers.insert(headers::MSG_ID, msg_id);
        headers.insert(headers::CONTENT_TYPE, content_type);
        headers.insert(headers::SCHEMA, schema);
        if headers.get(headers::TRACEPARENT).is_none() {
            crate::telemetry::inject_current(&mut headers);
        }
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.ack_timeout, async {
            let ack_future = self
                .js
                .publish_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(|e| classify(&subject, e.kind(), e.to_string()))?;
            ack_future
                .await
                .map_err(|e| classify(&subject, e.kind(), e.to_string()))
        })
        .await;
        self.duration.record(started.elapsed().as_secs_f64());
        match result {
            Err(_) => Err(PublishError::Timeout(self.ack_timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(ack)) => Ok(Published {
                stream: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            }),
        }
    }
}

fn classify(subject: &str, kind: PublishErrorKind, text: String) -> PublishError {
    match kind {
        PublishErrorKind::StreamNotFound => PublishError::NoStream(subject.to_owned()),
        PublishErrorKind::TimedOut => PublishError::Timeout(Duration::ZERO),
        PublishErrorKind::BrokenPipe => PublishError::Other(text),
        // Anything else is the server saying no: stream full, message too large, ...
        _ => PublishError::Refused(text),
    }
}
