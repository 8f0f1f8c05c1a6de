//! Puts a backup back: each stream created with its saved configuration (and its first
//! sequence), its messages published in order with their subjects and headers, then its
//! durable consumers created to start just after what they had acknowledged, so the services
//! carry on where they stood, redelivering at most what was in flight.

use crate::archive::{self, Manifest, Record, StreamSummary, Summary};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, message::PublishMessage};
use std::io::BufRead as _;
use std::path::Path;

/// Publishes awaited together (PubAcks pipelined, order kept).
const WINDOW: usize = 256;

/// Restores the backup in `dir`.
pub async fn restore(
    js: &jetstream::Context,
    dir: &Path,
    replace: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let file = archive::manifest_file(dir);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&file).with_context(|| format!("no backup at {}", file.display()))?,
    )
    .with_context(|| format!("{} is not a Ledgerline backup manifest", file.display()))?;
    if manifest.format != archive::FORMAT {
        anyhow::bail!(
            "backup format {} is not one this version reads ({})",
            manifest.format,
            archive::FORMAT
        );
    }
    // Refuse before changing anything.
    for entry in &manifest.streams {
        if let Ok(mut s) = js.get_stream(&entry.name).await {
            let held = s.info().await?.state.messages;
            if held > 0 && !replace {
                anyhow::bail!(
                    "stream {} already holds {held} messages: restore into an empty server, or pass --replace to delete it first",
                    entry.name
                );
            }
        }
    }
    let total = manifest.streams.iter().map(|s| s.messages).sum();
    let bar = ledgerline_platform::progress::bar(
        total,
        progress,
        "{bar:40} {pos}/{len} messages restored {per_sec} {eta} {msg}",
    );
    let mut summary = Summary {
        action: "restore",
        dir: dir.display().to_string(),
        streams: Vec::new(),
        messages: 0,
    };
    for entry in &manifest.streams {
        bar.set_message(entry.name.clone());
        // A service started before the restore made its streams empty: replace them too.
        if js.get_stream(&entry.name).await.is_ok() {
            js.delete_stream(&entry.name).await?;
        }
        let mut config = entry.config.clone();
        if entry.first_seq > 1 {
            config.first_sequence = Some(entry.first_seq);
        }
        let stream = js
            .create_stream(config)
            .await
            .with_context(|| format!("cannot create stream {}", entry.name))?;
        let mirror = entry.config.mirror.is_some();
        let (moved, duplicates) = if mirror {
            (Vec::new(), 0)
        } else {
            publish(js, &archive::messages_file(dir, &entry.name), &bar).await?
        };
        for c in &entry.consumers {
            let mut cfg = c.config.clone();
            let start = moved
                .iter()
                .find(|(old, _)| *old > c.ack_floor)
                .map(|(_, new)| *new)
                .unwrap_or_else(|| moved.last().map_or(1, |(_, new)| new + 1));
            cfg.deliver_policy = consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            };
            stream.create_consumer(cfg).await.with_context(|| {
                format!(
                    "cannot create consumer {:?} on {}",
                    c.config.durable_name, entry.name
                )
            })?;
        }
        let renumbered = moved.iter().filter(|(old, new)| old != new).count() as u64;
        // A bucket keeps only each key's latest revisions, so its stream has gaps that close up:
        // revisions change, and nothing outside the bucket names them.
        let bucket = entry.name.starts_with("KV_");
        if (renumbered > 0 && !bucket) || duplicates > 0 {
            tracing::warn!(stream = %entry.name, renumbered, duplicates, "Some messages did not come back under their old sequence.");
        }
        summary.messages += moved.len() as u64;
        summary.streams.push(StreamSummary {
            name: entry.name.clone(),
            messages: moved.len() as u64,
            bytes: entry.bytes,
            consumers: entry.consumers.len(),
            duplicates: Some(duplicates),
            renumbered: Some(renumbered),
        });
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Publishes the records of `file` in order; returns (old sequence, new sequence) of each
/// message stored, and how many the server dropped as duplicates.
async fn publish(
    js: &jetstream::Context,
    file: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<(u64, u64)>, u64)> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut moved = Vec::new();
    let mut duplicates = 0;
    let mut pending = Vec::with_capacity(WINDOW);
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let r: Record = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", file.display(), n + 1))?;
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in &r.headers {
            // A stored compare-and-set guard would fail against the new stream.
            if !k.to_ascii_lowercase().starts_with("nats-expected") {
                headers.append(k.as_str(), v.as_str());
            }
        }
        let ack = js
            .send_publish(
                r.subject.clone(),
                PublishMessage::build()
                    .payload(r.payload()?.into())
                    .headers(headers),
            )
            .await
            .with_context(|| format!("publishing {}", r.subject))?;
        pending.push((r.seq, ack));
        if pending.len() == WINDOW {
            settle(&mut pending, &mut moved, &mut duplicates, bar).await?;
        }
    }
    settle(&mut pending, &mut moved, &mut duplicates, bar).await?;
    Ok((moved, duplicates))
}

async fn settle(
    pending: &mut Vec<(u64, jetstream::context::PublishAckFuture)>,
    moved: &mut Vec<(u64, u64)>,
    duplicates: &mut u64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    for (old, ack) in pending.drain(..) {
        let ack = ack.await.map_err(|e| anyhow::anyhow!("PubAck: {e}"))?;
        if ack.duplicate {
            *duplicates += 1;
        } else {
            moved.push((old, ack.sequence));
        }
        bar.inc(1);
    }
    Ok(())
}
