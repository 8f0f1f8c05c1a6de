//! The backup's layout: `manifest.json` (streams, their configurations and durable consumers)
//! and `streams/<stream>.jsonl`, one message a line: its sequence, subject, headers and payload
//! (base64). Plain files, so a backup can be read, diffed and copied with ordinary tools.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format's version; a restore refuses one it does not know.
pub const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// nats-server version it was taken from.
    pub server_version: String,
    /// Every stream, in the order taken.
    pub streams: Vec<StreamEntry>,
}

/// One stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEntry {
    /// Its name (`KV_<bucket>` for a bucket).
    pub name: String,
    /// Its configuration as the server reported it.
    pub config: async_nats::jetstream::stream::Config,
    /// Messages copied.
    pub messages: u64,
    /// Payload and subject bytes copied.
    pub bytes: u64,
    /// First and last sequence copied (0 when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Durable consumers and how far they had acknowledged.
    pub consumers: Vec<ConsumerEntry>,
}

/// A durable consumer's configuration and position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerEntry {
    /// Its configuration.
    pub config: async_nats::jetstream::consumer::Config,
    /// Every stream sequence up to this one was acknowledged.
    pub ack_floor: u64,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its stream sequence when backed up.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Headers, name and value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Payload, base64.
    pub data: String,
}

impl Record {
    /// The payload's bytes.
    pub fn payload(&self) -> anyhow::Result<Vec<u8>> {
        Ok(base64::engine::general_purpose::STANDARD.decode(&self.data)?)
    }

    /// Encodes a payload.
    pub fn encode(payload: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(payload)
    }
}

/// `<dir>/streams/<stream>.jsonl`.
pub fn messages_file(dir: &Path, stream: &str) -> PathBuf {
    dir.join("streams").join(format!("{stream}.jsonl"))
}

/// `<dir>/manifest.json`.
pub fn manifest_file(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

/// What a backup or a restore did, per stream.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `backup` or `restore`.
    pub action: &'static str,
    /// The directory.
    pub dir: String,
    /// Per stream.
    pub streams: Vec<StreamSummary>,
    /// Messages in all.
    pub messages: u64,
}

/// One stream's line of a [`Summary`].
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub consumers: usize,
    /// Restore: messages the server took as duplicates (their `Nats-Msg-Id` was seen within
    /// the stream's window), so not stored again. Zero on a healthy restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
    /// Restore: messages stored under another sequence than they had (a gap in the backup, or
    /// a duplicate dropped): what names a sequence (a dead letter's RAW origin) points elsewhere.
    /// Zero on a healthy restore, but for KV buckets, whose gaps (old revisions) close up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renumbered: Option<u64>,
}

impl Manifest {
    /// The backup's summary.
    pub fn summary(&self) -> Summary {
        Summary {
            action: "backup",
            dir: String::new(),
            messages: self.streams.iter().map(|s| s.messages).sum(),
            streams: self
                .streams
                .iter()
                .map(|s| StreamSummary {
                    name: s.name.clone(),
                    messages: s.messages,
                    bytes: s.bytes,
                    consumers: s.consumers.len(),
                    duplicates: None,
                    renumbered: None,
                })
                .collect(),
        }
    }
}

/// A table for people, or JSON for scripts.
pub fn print(out: &mut impl Write, s: &Summary, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, s)?;
        return writeln!(out);
    }
    let rows: Vec<Vec<String>> = s
        .streams
        .iter()
        .map(|st| {
            let mut r = vec![
                st.name.clone(),
                st.messages.to_string(),
                st.bytes.to_string(),
                st.consumers.to_string(),
            ];
            if let (Some(d), Some(n)) = (st.duplicates, st.renumbered) {
                r.push(d.to_string());
                r.push(n.to_string());
            }
            r
        })
        .collect();
    let mut head = vec!["STREAM", "MESSAGES", "BYTES", "CONSUMERS"];
    if s.action == "restore" {
        head.extend(["DUPLICATES", "RENUMBERED"]);
    }
    ledgerline_platform::text::table(out, &head, &rows)?;
    writeln!(
        out,
        "{}: {} streams, {} messages{}",
        s.action,
        s.streams.len(),
        s.messages,
        if s.dir.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.dir)
        }
    )
}
