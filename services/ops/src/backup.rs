//! Copies streams out, message by message, through an ordered consumer: a consistent cut at
//! each stream's last sequence when its copy began (later messages are left for the next
//! backup). Durable consumers are recorded with their acknowledgement floor.

use crate::archive::{self, ConsumerEntry, Manifest, Record, StreamEntry};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures::{StreamExt, TryStreamExt};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How long to wait for the next message before calling a stream's copy short (a message
/// deleted while copying never arrives).
const STALL: Duration = Duration::from_secs(10);

/// Backs up `only` (all streams when empty) into `dir`.
pub async fn backup(
    js: &jetstream::Context,
    dir: &Path,
    only: &[String],
    server_version: &str,
    progress: bool,
) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir.join("streams"))
        .with_context(|| format!("cannot make {}", dir.display()))?;
    if archive::manifest_file(dir).exists() {
        anyhow::bail!(
            "{} already holds a backup: choose an empty directory",
            dir.display()
        );
    }
    let mut names: Vec<String> = js.stream_names().try_collect().await?;
    names.sort();
    if !only.is_empty() {
        for want in only {
            if !names.contains(want) {
                anyhow::bail!(
                    "no stream {want} on the server (have: {})",
                    names.join(", ")
                );
            }
        }
        names.retain(|n| only.contains(n));
    }
    let mut infos = Vec::new();
    for name in &names {
        let mut s = js.get_stream(name).await?;
        let info = s.info().await?.clone();
        infos.push((s, info));
    }
    let total: u64 = infos.iter().map(|(_, i)| i.state.messages).sum();
    let bar = ledgerline_platform::progress::bar(
        total,
        progress,
        "{bar:40} {pos}/{len} messages copied {per_sec} {eta} {msg}",
    );
    let mut manifest = Manifest {
        format: archive::FORMAT,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        server_version: server_version.to_owned(),
        streams: Vec::new(),
    };
    for (s, info) in infos {
        bar.set_message(info.config.name.clone());
        let entry = copy(&s, &info, dir, &bar).await?;
        manifest.streams.push(entry);
    }
    bar.finish_and_clear();
    let file = archive::manifest_file(dir);
    std::fs::write(&file, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(manifest)
}

async fn copy(
    s: &stream::Stream,
    info: &stream::Info,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<StreamEntry> {
    let name = info.config.name.clone();
    let consumers = durable_consumers(s).await?;
    let last = info.state.last_sequence;
    let mut entry = StreamEntry {
        name: name.clone(),
        config: info.config.clone(),
        messages: 0,
        bytes: 0,
        first_seq: 0,
        last_seq: 0,
        consumers,
    };
    let path = archive::messages_file(dir, &name);
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    if info.state.messages > 0 {
        let c = s
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut msgs = c.messages().await?;
        loop {
            let next = tokio::time::timeout(STALL, msgs.next()).await;
            let Ok(Some(m)) = next else {
                // A short copy must not pass for a whole one.
                anyhow::bail!(
                    "stream {name}: messages stopped arriving at sequence {} of {last}; the backup is incomplete (take it again)",
                    entry.last_seq
                );
            };
            let m = m.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
            let meta = m.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let (seq, pending) = (meta.stream_sequence, meta.pending);
            if seq > last {
                break;
            }
            let headers = m
                .headers
                .as_ref()
                .map(|h| {
                    h.iter()
                        .flat_map(|(k, vs)| {
                            vs.iter()
                                .map(move |v| (k.to_string(), v.as_str().to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let r = Record {
                seq,
                subject: m.subject.to_string(),
                headers,
                data: Record::encode(&m.payload),
            };
            serde_json::to_writer(&mut w, &r)?;
            w.write_all(b"\n")?;
            entry.messages += 1;
            entry.bytes += (m.payload.len() + m.subject.len()) as u64;
            if entry.first_seq == 0 {
                entry.first_seq = seq;
            }
            entry.last_seq = seq;
            bar.inc(1);
            // The last one, or the last there is (the newest were deleted since).
            if seq >= last || pending == 0 {
                break;
            }
        }
    }
    w.flush()?;
    Ok(entry)
}

/// The stream's durable consumers (ephemeral ones belong to running processes).
async fn durable_consumers(s: &stream::Stream) -> anyhow::Result<Vec<ConsumerEntry>> {
    let mut out = Vec::new();
    let mut list = s.consumers();
    while let Some(c) = list.next().await {
        let c = c?;
        if c.config.durable_name.is_some() {
            out.push(ConsumerEntry {
                ack_floor: c.ack_floor.stream_sequence,
                config: c.config,
            });
        }
    }
    out.sort_by(|a, b| a.config.durable_name.cmp(&b.config.durable_name));
    Ok(out)
}
