//! `normalizer replay`: re-normalise a store's RAW history under the current mapping.
//!
//! Canonical event ids carry the mapping revision, so what the streams already hold is known by
//! id: an event whose id is already in ORDERS/CUSTOMERS is unchanged and is not published again
//! (whatever the dedup window), and after a mapping change every event gets a new id and is
//! published. `--dry-run` publishes nothing and prints, per event, what would change.

use crate::config::{Config, ReplayArgs};
use crate::pipeline::{Pipeline, dead_letter_entry};
use crate::transform::{Canonical, Facts, Message, transform_with_facts};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Context};
use futures::StreamExt;
use ledgerline_contract::v1::{CustomerEvent, OrderEvent, RefundEvent};
use ledgerline_contract::{Schema, headers, streams, subjects};
use ledgerline_mapping::MappingSource;
use ledgerline_platform::publish::Publisher;
use prost::Message as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

/// Where to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Events stored at or after this unix time (seconds).
    Since(i64),
    /// This stream sequence.
    Sequence(u64),
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Raw events read.
    pub raw: u64,
    /// Canonical events produced.
    pub events: u64,
    /// Events not in the streams yet (published, or dry: would be).
    pub new: u64,
    /// Of `new`, those replacing an event of the same source under another revision.
    pub changed: u64,
    /// Events already in the streams under this revision.
    pub unchanged: u64,
    /// Raw events that did not normalise (dead-lettered, or dry: would be).
    pub rejected: u64,
}

/// Parses `--since`: RFC 3339 or a date.
pub fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--since {s:?}: expected RFC 3339 or YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp())
}

/// The `replay` subcommand.
pub async fn run_command(config: Config, args: ReplayArgs) -> anyhow::Result<()> {
    if !ledgerline_contract::is_valid_token(&args.store) {
        anyhow::bail!("--store {:?} is not a valid store name", args.store);
    }
    let start = match (&args.since, args.from_seq) {
        (Some(s), _) => Start::Since(parse_since(s)?),
        (None, Some(seq)) => Start::Sequence(seq),
        (None, None) => anyhow::bail!("give --since or --from-seq"),
    };
    let (source, handle) = MappingSource::load(config.mapping.clone())?;
    let client = ledgerline_platform::nats::connect(&config.nats, "normalizer-replay").await?;
    let js = ledgerline_platform::nats::jetstream(&client);
    if let Ok(kv) = js
        .get_key_value(ledgerline_contract::buckets::MAPPING_OVERLAY.bucket)
        .await
    {
        source
            .load_overlay(&kv)
            .await
            .map_err(|e| anyhow::anyhow!("mapping overlay: {e}"))?;
    }
    let pipeline = Pipeline::new(
        Publisher::new(js.clone(), config.publish_timeout),
        handle,
        config.retry_delays.clone(),
    );
    let mut stdout = std::io::stdout().lock();
    let report = replay(
        &js,
        &pipeline,
        &args.store,
        start,
        args.dry_run,
        !args.quiet,
        &mut stdout,
    )
    .await?;
    writeln!(
        stdout,
        "{} raw events → {} canonical events under mapping {}: {} {}new ({} replacing another revision), {} unchanged, {} rejected.",
        report.raw,
        report.events,
        pipeline.mapping().revision,
        report.new,
        if args.dry_run { "would be " } else { "" },
        report.changed,
        report.unchanged,
        report.rejected
    )?;
    Ok(())
}

/// Replays one store's RAW history from `start`.
pub async fn replay(
    js: &Context,
    pipeline: &Pipeline,
    store: &str,
    start: Start,
    dry_run: bool,
    progress: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    let effective = pipeline.mapping();
    let existing = index(js, store, dry_run).await?;
    let deliver_policy = match start {
        Start::Sequence(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.max(1),
        },
        Start::Since(_) => DeliverPolicy::All,
    };
    let raw = scan(
        js,
        streams::RAW.name,
        subjects::raw_clarity_store(store),
        deliver_policy,
    )
    .await?;
    let bar = ledgerline_platform::progress::bar(
        raw.total,
        progress,
        "{bar:40} {pos}/{len} raw events {per_sec} {eta}",
    );
    let mut report = Report::default();
    let mut messages = raw.messages;
    while let Some(m) = messages.next().await {
        let m = m?;
        if let Start::Since(since) = start
            && m.published_unix < since
        {
            bar.inc(1);
            if m.pending == 0 {
                break;
            }
            continue;
        }
        report.raw += 1;
        bar.inc(1);
        let store_header = m
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::CLARITY_STORE))
            .map(|v| v.as_str());
        let mut facts = Facts::default();
        match transform_with_facts(&m.payload, store_header, &effective, &mut facts) {
            Ok(events) => {
                let mut to_publish = Vec::new();
                for e in events {
                    report.events += 1;
                    if existing.ids.contains(&e.event_id) {
                        report.unchanged += 1;
                        continue;
                    }
                    report.new += 1;
                    let key = source_key(&e.event_id);
                    let old = existing.latest.get(key);
                    if old.is_some() || existing.sources.contains(key) {
                        report.changed += 1;
                    }
                    if dry_run {
                        bar.suspend(|| print_change(out, &e, old)).ok();
                    } else {
                        to_publish.push(e);
                    }
                }
                for e in &mut to_publish {
                    e.message.meta_mut().raw_sequence = m.sequence;
                }
                if !to_publish.is_empty() {
                    pipeline
                        .publish_all(&to_publish, m.headers.as_ref())
                        .await
                        .map_err(|e| anyhow::anyhow!("publishing replayed events: {e}"))?;
                }
            }
            Err(error) => {
                report.rejected += 1;
                if dry_run {
                    bar.suspend(|| writeln!(out, "! {} seq {}: {error}", m.subject, m.sequence))
                        .ok();
                } else {
                    let entry = dead_letter_entry(
                        &m.subject,
                        m.headers.as_ref(),
                        &m.payload,
                        m.sequence,
                        1,
                        &facts,
                        &effective,
                        error.reason(),
                        error.to_string(),
                    );
                    pipeline
                        .publish_dead_letter(&entry)
                        .await
                        .map_err(|e| anyhow::anyhow!("dead-lettering: {e}"))?;
                }
            }
        }
        if m.pending == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

fn source_key(event_id: &str) -> &str {
    event_id.rsplit_once('@').map_or(event_id, |(k, _)| k)
}

fn print_change(out: &mut dyn Write, new: &Canonical, old: Option<&Value>) -> std::io::Result<()> {
    let new_json = crate::json::canonical(new);
    match old {
        None => writeln!(out, "+ {} {}", new.subject, new.event_id),
        Some(old) => {
            writeln!(out, "~ {} {}", new.subject, new.event_id)?;
            let mut lines = Vec::new();
            diff("", old, &new_json, &mut lines);
            for l in lines {
                writeln!(out, "    {l}")?;
            }
            Ok(())
        }
    }
}

/// A structural diff: one line per changed leaf, `path: old → new`.
pub fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                diff(
                    &format!("{path}[{i}]"),
                    a.get(i).unwrap_or(&Value::Null),
                    b.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} → {b}")),
        _ => {}
    }
}

/// What the canonical streams already hold for a store.
#[derive(Debug, Default)]
struct Existing {
    /// Every event id.
    ids: BTreeSet<String>,
    /// `source.what` of every event.
    sources: BTreeSet<String>,
    /// The latest event per `source.what`, as JSON (dry runs only).
    latest: BTreeMap<String, Value>,
}

async fn index(js: &Context, store: &str, keep_json: bool) -> anyhow::Result<Existing> {
    let mut existing = Existing::default();
    for (stream, filter) in [
        (streams::ORDERS.name, subjects::orders_store(store)),
        (streams::CUSTOMERS.name, subjects::customers_store(store)),
    ] {
        let mut scan = scan(js, stream, filter, DeliverPolicy::All).await?;
        while let Some(m) = scan.messages.next().await {
            let m = m?;
            let Some(id) = m
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::MSG_ID))
                .map(|v| v.as_str().to_owned())
            else {
                continue;
            };
            let key = source_key(&id).to_owned();
            if keep_json {
                let schema = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(headers::SCHEMA))
                    .map(|v| v.as_str().to_owned());
                if let Some(c) = decode(&m.subject, &id, schema.as_deref(), &m.payload) {
                    existing
                        .latest
                        .insert(key.clone(), crate::json::canonical(&c));
                }
            }
            existing.sources.insert(key);
            existing.ids.insert(id);
            if m.pending == 0 {
                break;
            }
        }
    }
    Ok(existing)
}

fn decode(subject: &str, id: &str, schema: Option<&str>, payload: &[u8]) -> Option<Canonical> {
    let message = match schema? {
        OrderEvent::NAME => Message::Order(OrderEvent::decode(payload).ok()?),
        CustomerEvent::NAME => Message::Customer(CustomerEvent::decode(payload).ok()?),
        RefundEvent::NAME => Message::Refund(RefundEvent::decode(payload).ok()?),
        _ => return None,
    };
    Some(Canonical {
        subject: subject.to_owned(),
        event_id: id.to_owned(),
        message,
    })
}

/// One stored message, as read by a scan.
#[derive(Debug)]
struct Stored {
    subject: String,
    headers: Option<async_nats::HeaderMap>,
    payload: bytes::Bytes,
    sequence: u64,
    published_unix: i64,
    /// Messages left after this one when it was delivered.
    pending: u64,
}

struct Scan {
    total: u64,
    messages: futures::stream::BoxStream<'static, anyhow::Result<Stored>>,
}

/// Reads a stream (filtered) from an ephemeral, unacknowledged consumer; ends when nothing is
/// left (or at once when the stream has nothing for the filter).
async fn scan(
    js: &Context,
    stream: &str,
    filter: String,
    deliver_policy: DeliverPolicy,
) -> anyhow::Result<Scan> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!("stream {stream}: {e}"))?;
    let mut consumer = s
        .create_consumer(pull::Config {
            filter_subject: filter,
            deliver_policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("consumer on {stream}: {e}"))?;
    let total = consumer.info().await.map(|i| i.num_pending).unwrap_or(0);
    if total == 0 {
        return Ok(Scan {
            total,
            messages: futures::stream::empty().boxed(),
        });
    }
    let messages = consumer
        .stream()
        .max_messages_per_batch(500)
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("reading {stream}: {e}"))?;
    let messages = messages
        .map(|m| {
            let m = m.map_err(|e| anyhow::anyhow!("reading: {e}"))?;
            let info = m.info().map_err(|e| anyhow::anyhow!("message info: {e}"))?;
            let (sequence, published_unix, pending) = (
                info.stream_sequence,
                info.published.unix_timestamp(),
                info.pending,
            );
            let m: jetstream::Message = m;
            Ok(Stored {
                subject: m.subject.to_string(),
                headers: m.headers.clone(),
                payload: m.payload.clone(),
                sequence,
                published_unix,
                pending,
            })
        })
        .boxed();
    Ok(Scan { total, messages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_since("1970-01-01T00:01:00Z").unwrap(), 60);
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn diffs_leaves() {
        let a = serde_json::json!({"x": 1, "l": [1, 2], "m": {"k": "a"}});
        let b = serde_json::json!({"x": 1, "l": [1, 3, 4], "m": {"k": "b"}});
        let mut out = Vec::new();
        diff("", &a, &b, &mut out);
        assert_eq!(out, ["l[1]: 2 → 3", "l[2]: null → 4", "m.k: \"a\" → \"b\""]);
    }

    #[test]
    fn keys() {
        assert_eq!(source_key("evt_1.order@abc"), "evt_1.order");
    }
}
