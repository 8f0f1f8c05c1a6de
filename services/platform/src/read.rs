//! Reading what a stream holds on some subjects, without consuming it: an ephemeral consumer
//! with no acks, delivering from the first matching message. The server finds matching messages
//! through its subject index, so a filter that names one order reads that order, not the stream.

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use std::time::Duration;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its subject.
    pub subject: String,
    /// Its headers.
    pub headers: Option<async_nats::HeaderMap>,
    /// Its payload.
    pub payload: bytes::Bytes,
    /// Its stream sequence.
    pub sequence: u64,
    /// When the stream stored it.
    pub stored_at: chrono::DateTime<chrono::Utc>,
}

impl Stored {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[error("reading {stream}: {message}")]
pub struct ReadError {
    stream: String,
    message: String,
}

/// Up to `limit` messages of `stream` on `filters` (any of them), oldest first; `true` with
/// them when more were left unread.
pub async fn by_subjects(
    js: &Context,
    stream: &str,
    filters: Vec<String>,
    limit: usize,
) -> Result<(Vec<Stored>, bool), ReadError> {
    let err = |e: &dyn std::fmt::Display| ReadError {
        stream: stream.to_owned(),
        message: e.to_string(),
    };
    let s = js.get_stream(stream).await.map_err(|e| err(&e))?;
    let mut consumer = s
        .create_consumer(pull::Config {
            filter_subjects: filters,
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let pending = consumer
        .info()
        .await
        .map(|i| i.num_pending)
        .map_err(|e| err(&e))?;
    let want = (pending as usize).min(limit);
    let mut out = Vec::with_capacity(want);
    if want > 0 {
        let mut messages = consumer
            .fetch()
            .max_messages(want)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| err(&e))?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| err(&e))?;
            let info = m.info().map_err(|e| err(&e))?;
            let (sequence, published) = (info.stream_sequence, info.published);
            let stored_at = chrono::DateTime::from_timestamp(
                published.unix_timestamp(),
                published.nanosecond(),
            )
            .unwrap_or_default();
            out.push(Stored {
                subject: m.subject.to_string(),
                headers: m.headers.clone(),
                payload: m.payload.clone(),
                sequence,
                stored_at,
            });
            if out.len() >= want {
                break;
            }
        }
    }
    let name = consumer.cached_info().name.clone();
    // Gone by its inactivity threshold anyway; deleting now keeps the server tidy.
    let _ = s.delete_consumer(&name).await;
    let more = pending as usize > out.len();
    Ok((out, more))
}

/// The message at `sequence` of `stream`, if it is still there.
pub async fn at(js: &Context, stream: &str, sequence: u64) -> Result<Option<Stored>, ReadError> {
    let err = |e: &dyn std::fmt::Display| ReadError {
        stream: stream.to_owned(),
        message: e.to_string(),
    };
    let s = js.get_stream(stream).await.map_err(|e| err(&e))?;
    match s.get_raw_message(sequence).await {
        Ok(m) => Ok(Some(Stored {
            subject: m.subject.to_string(),
            headers: Some(m.headers),
            payload: m.payload,
            sequence: m.sequence,
            stored_at: chrono::DateTime::from_timestamp(
                m.time.unix_timestamp(),
                m.time.nanosecond(),
            )
            .unwrap_or_default(),
        })),
        Err(e)
            if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
        {
            Ok(None)
        }
        Err(e) => Err(err(&e)),
    }
}
