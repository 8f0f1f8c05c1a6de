//! What an operator can do to entries. Every action is audited and idempotent, and nothing
//! writes to Xero around the pipeline: a replay republishes the original to its subject (the
//! writer's ledger keeps the effect exactly-once), and a normalizer-stage replay asks the
//! normalizer to reprocess the RAW sequence, never appending to RAW.

use crate::entry::{Entry, Status, Summary, now};
use crate::store::{Indexed, Store, StoreError, Versioned};
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use bytes::Bytes;
use futures::StreamExt;
use ledgerline_contract::v1::{ReprocessOutcome, ReprocessReply, ReprocessRequest};
use ledgerline_contract::{buckets, headers, streams, subjects};
use ledgerline_mapping::{Layer, load_layers};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use utoipa::ToSchema;

/// Xero honours an `Idempotency-Key` for this long; past it only the ledger guards a write.
pub const XERO_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The store said no (not found, conflict, refused, NATS).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A peer (NATS, the normalizer) did not answer in time; try again.
    #[error("{0}")]
    Unavailable(String),
}

/// What a replay did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    /// The entry.
    pub id: String,
    /// Which replay of it this was (1, 2, ...).
    pub replay: u32,
    /// `republished`, `reprocessed`, `unchanged`, `failed_again` or `skipped`.
    pub outcome: String,
    /// In words.
    pub detail: String,
    /// What keeps the effect exactly-once: Xero's idempotency window and the ledger, or the
    /// ledger alone.
    pub guard: String,
    /// The entry's status after it.
    pub status: Status,
}

/// A fix: a suggestion of the issue by its index, or a rule of the operator's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FixRequest {
    /// Index into the issue's suggestions (0 is the best).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0)]
    pub suggestion: Option<usize>,
    /// A mapping-overlay rule (TOML), instead of a suggestion.
    pub rule: Option<String>,
    /// Apply the rule only; replay nothing.
    #[serde(default)]
    pub no_replay: bool,
}

/// A JSON number that is a whole number, written `3` or `3.0`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).map(Some).map_err(D::Error::custom);
    }
    let text = n.to_string();
    match text.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b == b'0') && !whole.starts_with('-') => {
            whole.parse().map(Some).map_err(D::Error::custom)
        }
        _ => Err(D::Error::custom(format!(
            "suggestion: {text} is not a whole number"
        ))),
    }
}

/// What a fix did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FixResult {
    /// The issue.
    pub issue: String,
    /// The rule written.
    pub rule: String,
    /// Its key in the `mapping_overlay` bucket.
    pub overlay_key: String,
    /// Its revision there; replays wait until the stages have read it.
    pub overlay_revision: u64,
    /// One per entry replayed.
    pub replays: Vec<ReplayResult>,
}

/// Carries out actions on the store.
#[derive(Debug, Clone)]
pub struct Actions {
    store: Store,
    client: async_nats::Client,
    js: Context,
    mapping_file: Option<PathBuf>,
    reprocess_timeout: Duration,
}

impl Actions {
    /// Actions on `store`.
    pub fn new(
        store: Store,
        client: async_nats::Client,
        mapping_file: Option<PathBuf>,
        reprocess_timeout: Duration,
    ) -> Self {
        let js = ledgerline_platform::nats::jetstream(&client);
        Self {
            store,
            client,
            js,
            mapping_file,
            reprocess_timeout,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replays entry `id`. `expected` is the caller's If-Match revision; `overlay_revision`
    /// a fix's (0 for none).
    pub async fn replay(
        &self,
        id: &str,
        who: &str,
        expected: Option<u64>,
        overlay_revision: u64,
    ) -> Result<ReplayResult, ActionError> {
        // Claim the replay number first: concurrent replays get distinct numbers, and each
        // is recorded before anything is sent.
        let claimed = self
            .store
            .update(id, expected, |e| {
                if !e.status.replayable() {
                    return Err(StoreError::Refused(format!(
                        "entry {} is {}: only open, acknowledged or replayed entries replay",
                        e.id,
                        e.status.as_str()
                    )));
                }
                e.replays += 1;
                e.last_replay_at = Some(now());
                let n = e.replays;
                e.audit(who, "replay_requested", format!("replay {n} requested"));
                Ok(())
            })
            .await?;
        let entry = claimed.entry;
        let n = entry.replays;
        let guard = guard_of(&entry.stage, &entry.first_seen, &entry.entity);
        let sent = if entry.stage == "normalizer" {
            self.reprocess(&entry, n, overlay_revision).await
        } else {
            self.republish(&entry, n, overlay_revision).await
        };
        let (outcome, detail, status) = match sent {
            Ok(x) => x,
            Err(e) => {
                self.store
                    .update(id, None, |en| {
                        en.audit(who, "replay_failed", format!("replay {n} not sent: {e}"));
                        Ok(())
                    })
                    .await?;
                return Err(e);
            }
        };
        let done = self
            .store
            .update(id, None, |en| {
                // A fact may have resolved it meanwhile; never reopen a closed entry here.
                if en.status.replayable() {
                    en.set_status(status);
                }
                en.audit(
                    who,
                    outcome,
                    format!("replay {n}: {detail}; guarded by {guard}"),
                );
                Ok(())
            })
            .await?;
        metrics::counter!("dead_letter_actions_total", "action" => "replay").increment(1);
        Ok(ReplayResult {
            id: id.to_owned(),
            replay: n,
            outcome: outcome.to_owned(),
            detail,
            guard,
            status: done.entry.status,
        })
    }

    /// Writer (or later) stage: the original payload (or the operator's edit) to its subject,
    /// under a new message id linking back to the entry.
    async fn republish(
        &self,
        entry: &Entry,
        n: u32,
        overlay_revision: u64,
    ) -> Result<(&'static str, String, Status), ActionError> {
        let payload = self.replay_payload(entry).await?;
        let mut h = HeaderMap::new();
        for (k, v) in &entry.headers {
            if [
                headers::MSG_ID,
                headers::REPLAY_OF,
                headers::OVERLAY_REVISION,
            ]
            .contains(&k.as_str())
            {
                continue;
            }
            h.insert(k.as_str(), v.as_str());
        }
        let original = entry
            .headers
            .get(headers::MSG_ID)
            .cloned()
            .unwrap_or_else(|| entry.id.clone());
        let msg_id = format!("{original}.replay.{n}");
        h.insert(headers::MSG_ID, msg_id.as_str());
        h.insert(headers::REPLAY_OF, entry.id.as_str());
        if overlay_revision > 0 {
            h.insert(
                headers::OVERLAY_REVISION,
                overlay_revision.to_string().as_str(),
            );
        }
        let ack = tokio::time::timeout(Duration::from_secs(10), async {
            self.js
                .publish_with_headers(entry.subject.clone(), h, payload)
                .await?
                .await
        })
        .await
        .map_err(|_| ActionError::Unavailable("no acknowledgement from JetStream".into()))?
        .map_err(|e| ActionError::Unavailable(format!("publish to {}: {e}", entry.subject)))?;
        Ok((
            "republished",
            format!(
                "republished to {} as {msg_id} ({} sequence {})",
                entry.subject, ack.stream, ack.sequence
            ),
            Status::Replayed,
        ))
    }

    /// The edited payload, else the copy, else (cut at the size cap) the original from its stream.
    async fn replay_payload(&self, entry: &Entry) -> Result<Bytes, ActionError> {
        if entry.edited
            && let Some(p) = self.store.payload(&entry.id, true).await?
        {
            return Ok(p);
        }
        if !entry.payload_truncated
            && let Some(p) = self.store.payload(&entry.id, false).await?
        {
            return Ok(p);
        }
        if entry.original_stream.is_empty() || entry.original_sequence == 0 {
            return Err(ActionError::Invalid(format!(
                "entry {} has no whole payload to replay",
                entry.id
            )));
        }
        let stream = self
            .js
            .get_stream(&entry.original_stream)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let m = stream
            .get_raw_message(entry.original_sequence)
            .await
            .map_err(|e| {
                ActionError::Invalid(format!(
                    "the original ({} sequence {}) is gone: {e}",
                    entry.original_stream, entry.original_sequence
                ))
            })?;
        Ok(m.payload)
    }

    /// Normalizer stage: ask the normalizer to reprocess the RAW sequence.
    async fn reprocess(
        &self,
        entry: &Entry,
        n: u32,
        overlay_revision: u64,
    ) -> Result<(&'static str, String, Status), ActionError> {
        if entry.original_stream != streams::RAW.name || entry.original_sequence == 0 {
            return Err(ActionError::Invalid(format!(
                "entry {} names no RAW sequence (a v1 dead letter): resync the order from the store instead",
                entry.id
            )));
        }
        let reply = self
            .request_reprocess(ReprocessRequest {
                raw_sequences: vec![entry.original_sequence],
                replay_of: entry.id.clone(),
                replay: n,
                overlay_revision,
            })
            .await?;
        let r = reply
            .results
            .first()
            .ok_or_else(|| ActionError::Unavailable("the normalizer answered nothing".into()))?;
        let under = format!("under mapping {}", reply.mapping_revision);
        match r.outcome() {
            ReprocessOutcome::Published => Ok((
                "reprocessed",
                format!(
                    "RAW sequence {} reprocessed {under}: {} ({})",
                    r.raw_sequence,
                    r.detail,
                    r.event_ids.join(", ")
                ),
                Status::Replayed,
            )),
            ReprocessOutcome::Unchanged => Ok((
                "unchanged",
                format!(
                    "RAW sequence {} reprocessed {under}: nothing new, its canonical events exist already ({})",
                    r.raw_sequence,
                    r.event_ids.join(", ")
                ),
                Status::Replayed,
            )),
            ReprocessOutcome::DeadLettered => Ok((
                "failed_again",
                format!("RAW sequence {} {under}: {}", r.raw_sequence, r.detail),
                Status::Open,
            )),
            ReprocessOutcome::Missing => Err(ActionError::Invalid(format!(
                "RAW sequence {} is gone (the stream's age limit): resync the order from the store",
                r.raw_sequence
            ))),
            _ => Err(ActionError::Unavailable(format!(
                "the normalizer could not reprocess it now: {}",
                r.detail
            ))),
        }
    }

    /// Sends a reprocess request and waits for the answer.
    pub async fn request_reprocess(
        &self,
        req: ReprocessRequest,
    ) -> Result<ReprocessReply, ActionError> {
        let reply = tokio::time::timeout(
            self.reprocess_timeout,
            self.client
                .request(subjects::NORMALIZER_REPROCESS, req.encode_to_vec().into()),
        )
        .await
        .map_err(|_| ActionError::Unavailable("the normalizer did not answer in time".into()))?
        .map_err(|e| {
            ActionError::Unavailable(format!("no normalizer answers reprocess requests: {e}"))
        })?;
        ReprocessReply::decode(reply.payload)
            .map_err(|e| ActionError::Unavailable(format!("the normalizer's answer: {e}")))
    }

    /// Applies a suggestion or rule to an issue as a mapping-overlay rule, then replays its
    /// open entries.
    pub async fn fix(
        &self,
        issue: &str,
        req: &FixRequest,
        who: &str,
        visible: impl Fn(&Summary) -> bool,
    ) -> Result<FixResult, ActionError> {
        let entries: Vec<Indexed> = self
            .store
            .of_issue(issue)
            .into_iter()
            .filter(|v| visible(&v.entry))
            .collect();
        let first = entries.first().ok_or_else(|| {
            ActionError::Store(StoreError::NotFound(format!(
                "open entries of issue {issue}"
            )))
        })?;
        let rule = match (&req.rule, req.suggestion) {
            (Some(r), _) => r.clone(),
            (None, Some(i)) => {
                let s = first.entry.suggestions.get(i).ok_or_else(|| {
                    ActionError::Invalid(format!("issue {issue} has no suggestion {i}"))
                })?;
                if s.rule.is_empty() {
                    return Err(ActionError::Invalid(format!(
                        "suggestion {i} ({}: {}) has no mapping rule: {}; act there, then replay",
                        s.field, s.suggested_value, s.reason
                    )));
                }
                s.rule.clone()
            }
            (None, None) => {
                return Err(ActionError::Invalid(
                    "give a suggestion index or a rule".into(),
                ));
            }
        };
        let key = format!("review.{issue}");
        self.validate(&key, &rule).await?;
        let kv = self
            .js
            .get_key_value(buckets::MAPPING_OVERLAY.bucket)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let overlay_revision = kv
            .put(&key, Bytes::from(rule.clone()))
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        metrics::counter!("dead_letter_actions_total", "action" => "fix").increment(1);
        let mut replays = Vec::new();
        for v in &entries {
            self.store
                .update(&v.entry.id, None, |e| {
                    e.audit(
                        who,
                        "fix_applied",
                        format!(
                            "mapping-overlay rule {key} (revision {overlay_revision}):\n{rule}"
                        ),
                    );
                    Ok(())
                })
                .await?;
            if req.no_replay {
                continue;
            }
            let r = match self.replay(&v.entry.id, who, None, overlay_revision).await {
                Ok(r) => r,
                Err(e) => ReplayResult {
                    id: v.entry.id.clone(),
                    replay: v.entry.replays + 1,
                    outcome: "skipped".into(),
                    detail: e.to_string(),
                    guard: guard_of(&v.entry.stage, &v.entry.first_seen, &v.entry.entity),
                    status: v.entry.status,
                },
            };
            replays.push(r);
        }
        Ok(FixResult {
            issue: issue.to_owned(),
            rule,
            overlay_key: key,
            overlay_revision,
            replays,
        })
    }

    /// A rule must load over the mapping file and the overlay as they are, or it is refused
    /// here rather than rejected by every stage's reload.
    async fn validate(&self, key: &str, rule: &str) -> Result<(), ActionError> {
        let mut layers = Vec::new();
        if let Some(p) = &self.mapping_file {
            layers.push(Layer::from_file(p).map_err(|e| ActionError::Invalid(e.to_string()))?);
        }
        if let Ok(kv) = self.js.get_key_value(buckets::MAPPING_OVERLAY.bucket).await
            && let Ok(mut keys) = kv.keys().await
        {
            let mut all = Vec::new();
            while let Some(Ok(k)) = keys.next().await {
                all.push(k);
            }
            all.sort();
            for k in all.into_iter().filter(|k| k != key) {
                if let Ok(Some(v)) = kv.get(&k).await {
                    layers.push(
                        Layer::from_overlay(&k, &v)
                            .map_err(|e| ActionError::Invalid(e.to_string()))?,
                    );
                }
            }
        }
        layers.push(
            Layer::from_overlay(key, rule.as_bytes())
                .map_err(|e| ActionError::Invalid(format!("the rule does not load: {e}")))?,
        );
        load_layers(&layers)
            .map(|_| ())
            .map_err(|e| ActionError::Invalid(format!("the mapping would not validate: {e}")))
    }

    /// Discards (or ignores) an entry with a reason.
    pub async fn close(
        &self,
        id: &str,
        who: &str,
        expected: Option<u64>,
        status: Status,
        reason: &str,
    ) -> Result<Versioned, ActionError> {
        if reason.trim().is_empty() {
            return Err(ActionError::Invalid("a reason is needed".into()));
        }
        let action = status.as_str();
        let v = self
            .store
            .update(id, expected, |e| {
                if e.status == status {
                    return Ok(());
                }
                if !e.status.replayable() && e.status != Status::Ignored {
                    return Err(StoreError::Refused(format!(
                        "entry {} is {} already",
                        e.id,
                        e.status.as_str()
                    )));
                }
                e.set_status(status);
                e.audit(who, action, reason.trim());
                Ok(())
            })
            .await?;
        metrics::counter!("dead_letter_actions_total", "action" => action).increment(1);
        Ok(v)
    }

    /// Acknowledge, assign, tag or note: `f` makes the change and says what it did (`None`
    /// when it changes nothing).
    pub async fn annotate(
        &self,
        id: &str,
        who: &str,
        expected: Option<u64>,
        action: &'static str,
        f: impl Fn(&mut Entry) -> Option<String>,
    ) -> Result<Versioned, ActionError> {
        let v = self
            .store
            .update(id, expected, |e| {
                if let Some(detail) = f(e) {
                    e.audit(who, action, detail);
                }
                Ok(())
            })
            .await?;
        metrics::counter!("dead_letter_actions_total", "action" => action).increment(1);
        Ok(v)
    }

    /// Assigns an entry to `assignee` (at most 200 characters; blank unassigns).
    pub async fn assign(
        &self,
        id: &str,
        who: &str,
        expected: Option<u64>,
        assignee: &str,
    ) -> Result<Versioned, ActionError> {
        if assignee.chars().count() > 200 {
            return Err(ActionError::Invalid(
                "assignee is at most 200 characters".into(),
            ));
        }
        let to = assignee.trim().to_owned();
        self.annotate(id, who, expected, "assigned", |e| {
            let new = (!to.is_empty()).then(|| to.clone());
            (e.assignee != new).then(|| {
                e.assignee = new.clone();
                new.map_or("unassigned".to_owned(), |n| format!("assigned to {n}"))
            })
        })
        .await
    }

    /// Keeps an edited payload beside the original; the next replay sends it.
    pub async fn edit(
        &self,
        id: &str,
        who: &str,
        expected: Option<u64>,
        payload: Bytes,
    ) -> Result<Versioned, ActionError> {
        let current = self
            .store
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if current.entry.stage == "normalizer" {
            return Err(ActionError::Invalid(
                "a normalizer-stage entry replays its RAW event as stored (RAW is the system of record): fix the mapping, or correct the order in the store and resync it".into(),
            ));
        }
        if !current.entry.status.replayable() {
            return Err(ActionError::Invalid(format!(
                "entry {id} is {}",
                current.entry.status.as_str()
            )));
        }
        if !current.entry.schema.is_empty()
            && crate::decode::view(&current.entry.schema, &payload).is_none()
        {
            return Err(ActionError::Invalid(format!(
                "the edited payload is not a valid {}",
                current.entry.schema
            )));
        }
        self.store.put_edited(id, payload.clone()).await?;
        let size = payload.len();
        let v = self
            .store
            .update(id, expected, |e| {
                e.edited = true;
                e.audit(
                    who,
                    "edited",
                    format!("payload edited ({size} bytes); the original is kept"),
                );
                Ok(())
            })
            .await?;
        metrics::counter!("dead_letter_actions_total", "action" => "edit").increment(1);
        Ok(v)
    }

    /// RAW sequences of `store` stored between `from` and `to`, at most `limit` of them.
    pub async fn raw_window(
        &self,
        store: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<u64>, ActionError> {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull};
        let stream = self
            .js
            .get_stream(streams::RAW.name)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
            from.timestamp_nanos_opt().unwrap_or_default(),
        ))
        .map_err(|e| ActionError::Invalid(e.to_string()))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subjects::raw_clarity_store(store),
                deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
                ..Default::default()
            })
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
            let Ok(Some(Ok(m))) = next else { break };
            let info = m
                .info()
                .map_err(|e| ActionError::Unavailable(e.to_string()))?;
            let at = info.published.unix_timestamp();
            if at > to.timestamp() {
                break;
            }
            out.push(info.stream_sequence);
            if out.len() >= limit || info.pending == 0 {
                break;
            }
        }
        Ok(out)
    }
}

/// Which guard keeps a replay exactly-once, for an entry of `stage` first seen at
/// `first_seen` (RFC 3339) about `entity`.
pub fn guard_of(stage: &str, first_seen: &str, entity: &str) -> String {
    let inside = chrono::DateTime::parse_from_rfc3339(first_seen)
        .map(|t| {
            chrono::Utc::now().signed_duration_since(t)
                < chrono::Duration::from_std(XERO_IDEMPOTENCY_WINDOW).expect("fits")
        })
        .unwrap_or(false);
    if stage == "normalizer" {
        "canonical event ids (source event + mapping revision) and the writer's ledger".to_owned()
    } else if inside {
        format!(
            "Xero's Idempotency-Key (inside its 6-minute window) and the writer's ledger ({entity})"
        )
    } else {
        format!("the writer's ledger ({entity}): outside Xero's 6-minute idempotency window")
    }
}
