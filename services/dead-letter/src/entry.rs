//! A review-queue entry: one dead letter, what the operator did with it, and the issue it
//! belongs to.

use ledgerline_contract::v1::{DeadLetter, ReasonClass, Stage, Suggestion};
use ledgerline_platform::dead_letter::reason_label;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Where an entry stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a person.
    Open,
    /// Seen; someone is on it.
    Acknowledged,
    /// Sent through the pipeline again; resolves when the order is written.
    Replayed,
    /// The order was written (or the replay needed no write).
    Resolved,
    /// Thrown away, with a reason.
    Discarded,
    /// Muted, with a reason (kept, never removed).
    Ignored,
}

impl Status {
    /// Counts as open work (alerts, metrics, the issue's open count).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Acknowledged)
    }

    /// May be replayed or fixed.
    pub fn replayable(self) -> bool {
        matches!(self, Self::Open | Self::Acknowledged | Self::Replayed)
    }

    /// Removed by retention once old enough.
    pub fn expires(self) -> bool {
        matches!(self, Self::Resolved | Self::Discarded)
    }

    /// All of them, for filters and metrics.
    pub const ALL: [Status; 6] = [
        Self::Open,
        Self::Acknowledged,
        Self::Replayed,
        Self::Resolved,
        Self::Discarded,
        Self::Ignored,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Replayed => "replayed",
            Self::Resolved => "resolved",
            Self::Discarded => "discarded",
            Self::Ignored => "ignored",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// What exactly is at fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaultView {
    /// e.g. `unknown_tax_code`.
    pub code: String,
    /// e.g. `tax_code`.
    pub field: String,
    /// e.g. `GST0`.
    pub value: String,
}

/// A ranked fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SuggestionView {
    /// What to change.
    pub field: String,
    /// Its value now.
    pub current_value: String,
    /// The suggested value.
    pub suggested_value: String,
    /// 0..1, higher is better (a ranking, not money).
    pub score: f64,
    /// Why.
    pub reason: String,
    /// The mapping-overlay rule (TOML) that applies it; empty when a person must act elsewhere.
    pub rule: String,
}

impl From<&Suggestion> for SuggestionView {
    fn from(s: &Suggestion) -> Self {
        Self {
            field: s.field.clone(),
            current_value: s.current_value.clone(),
            suggested_value: s.suggested_value.clone(),
            score: s.score,
            reason: s.reason.clone(),
            rule: s.rule.clone(),
        }
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// RFC 3339.
    pub at: String,
    /// `system` or the caller (`operator#1a2b3c`).
    pub who: String,
    /// e.g. `received`, `replayed`, `resolved`, `discarded`.
    pub action: String,
    /// What happened, in words.
    pub detail: String,
}

/// A note an operator left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    /// RFC 3339.
    pub at: String,
    /// Who wrote it.
    pub who: String,
    /// The note.
    pub text: String,
}

/// One review-queue entry, as kept in KV (the payloads are kept beside it, read on demand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// The dead letter's id.
    pub id: String,
    /// `normalizer`, `xero_writer`, ...
    pub stage: String,
    /// Reason class: `mapping`, `invalid`, `xero_validation`, ...
    pub reason: String,
    /// What is at fault.
    pub fault: FaultView,
    /// The issue it belongs to (stage + fault code + field + value).
    pub issue: String,
    /// The issue's readable key.
    pub issue_key: String,
    /// The stage's error text.
    pub error: String,
    /// Where the original was published.
    pub subject: String,
    /// The original headers.
    pub headers: BTreeMap<String, String>,
    /// The stream and sequence of the original (empty/0 for v1 dead letters).
    pub original_stream: String,
    /// See `original_stream`.
    pub original_sequence: u64,
    /// The payload copy was cut at the size cap.
    pub payload_truncated: bool,
    /// The original payload's size in bytes.
    pub payload_size: u64,
    /// The DLQ sequence of the first dead letter.
    pub dlq_sequence: u64,
    /// Store.
    pub store: String,
    /// `<store>/<order id>` (or `<store>/account/<key>`).
    pub entity: String,
    /// The store's order number, when the payload names one.
    pub order_number: String,
    /// The customer (email or name), when the payload names one; masked for viewers.
    pub customer: String,
    /// The order's version in the payload (0 when unknown).
    pub order_version: u64,
    /// Xero tenant, when known.
    pub tenant: String,
    /// Deliveries the stage made before giving up, summed over its dead letters.
    pub attempts: u32,
    /// Dead letters folded into this entry (the first, plus replays that failed again).
    pub occurrences: u32,
    /// RFC 3339: first and last time the stage gave up.
    pub first_seen: String,
    /// See `first_seen`.
    pub last_seen: String,
    /// Ranked fixes.
    pub suggestions: Vec<SuggestionView>,
    /// Where it stands.
    pub status: Status,
    /// Who is on it.
    pub assignee: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Who did what, when.
    pub audit: Vec<AuditEvent>,
    /// Replays so far.
    pub replays: u32,
    /// RFC 3339 of the last replay.
    pub last_replay_at: Option<String>,
    /// An edited payload is kept beside the original and replayed instead.
    pub edited: bool,
    /// RFC 3339 of when it was resolved, discarded or ignored.
    pub closed_at: Option<String>,
    /// The contract version of the dead letter (0 for v1).
    pub contract_version: u32,
}

/// What the payload says about the order, for search and auto-resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadFacts {
    /// Order number.
    pub order_number: String,
    /// Customer email or name.
    pub customer: String,
    /// Order version.
    pub version: u64,
}

/// The current time as RFC 3339 with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Entry {
    /// A new open entry from a dead letter stored at DLQ `dlq_sequence`.
    pub fn from_dead_letter(dl: &DeadLetter, dlq_sequence: u64, facts: PayloadFacts) -> Self {
        let stage = stage_label(dl.stage());
        let fault = dl
            .fault
            .as_ref()
            .map(|f| FaultView {
                code: f.code.clone(),
                field: f.field.clone(),
                value: f.value.clone(),
            })
            .unwrap_or_else(|| FaultView {
                code: reason_label(dl.reason_class()).to_owned(),
                ..Default::default()
            });
        let issue_key = issue_key(stage, &fault, &dl.error);
        let at = if dl.failed_at.is_empty() {
            now()
        } else {
            dl.failed_at.clone()
        };
        Self {
            id: dl.id.clone(),
            stage: stage.to_owned(),
            reason: reason_label(dl.reason_class()).to_owned(),
            issue: issue_id(&issue_key),
            issue_key,
            fault,
            error: dl.error.clone(),
            subject: dl.original_subject.clone(),
            headers: dl.original_headers.clone(),
            original_stream: dl.original_stream.clone(),
            original_sequence: dl.original_sequence,
            payload_truncated: dl.payload_truncated,
            payload_size: if dl.original_size > 0 {
                dl.original_size
            } else {
                dl.original_payload.len() as u64
            },
            dlq_sequence,
            store: dl.store.clone(),
            entity: dl.entity_key.clone(),
            order_number: facts.order_number,
            customer: facts.customer,
            order_version: facts.version,
            tenant: dl.tenant.clone(),
            attempts: dl.attempts.max(1),
            occurrences: 1,
            first_seen: at.clone(),
            last_seen: at.clone(),
            suggestions: dl.suggestions.iter().map(SuggestionView::from).collect(),
            status: Status::Open,
            assignee: None,
            tags: vec![],
            notes: vec![],
            audit: vec![AuditEvent {
                at,
                who: "system".into(),
                action: "received".into(),
                detail: format!("{stage} gave up: {}", dl.error),
            }],
            replays: 0,
            last_replay_at: None,
            edited: false,
            closed_at: None,
            contract_version: dl.contract_version,
        }
    }

    /// Appends to the audit trail.
    pub fn audit(&mut self, who: &str, action: &str, detail: impl Into<String>) {
        self.audit.push(AuditEvent {
            at: now(),
            who: who.to_owned(),
            action: action.to_owned(),
            detail: detail.into(),
        });
    }

    /// Moves to `status`, noting when it closed.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
        self.closed_at = if matches!(
            status,
            Status::Resolved | Status::Discarded | Status::Ignored
        ) {
            Some(now())
        } else {
            None
        };
    }

    /// The `Ledgerline-Schema` of the payload.
    pub fn schema(&self) -> &str {
        self.headers
            .get(ledgerline_contract::headers::SCHEMA)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// A refund (or return) rather than the order itself.
    pub fn is_refund(&self) -> bool {
        ledgerline_contract::subjects::is_refund(&self.subject)
            || self.schema() == "ledgerline.v1.RefundEvent"
    }
}

/// What the in-memory index keeps of an entry: everything lists, filters, issues and
/// auto-resolve need. Headers, the audit trail and notes stay in KV and are read on demand,
/// so 10,000 entries fit in a few MiB.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// See [`Entry`].
    pub id: String,
    /// See [`Entry`].
    pub issue: String,
    /// See [`Entry`].
    pub issue_key: String,
    /// See [`Entry`].
    pub stage: String,
    /// See [`Entry`].
    pub reason: String,
    /// See [`Entry`].
    pub fault: FaultView,
    /// See [`Entry`].
    pub error: String,
    /// See [`Entry`].
    pub subject: String,
    /// The payload's `Ledgerline-Schema`.
    pub schema: String,
    /// See [`Entry`].
    pub store: String,
    /// See [`Entry`].
    pub entity: String,
    /// See [`Entry`].
    pub order_number: String,
    /// See [`Entry`].
    pub customer: String,
    /// See [`Entry`].
    pub order_version: u64,
    /// See [`Entry`].
    pub attempts: u32,
    /// See [`Entry`].
    pub occurrences: u32,
    /// See [`Entry`].
    pub replays: u32,
    /// See [`Entry`].
    pub first_seen: String,
    /// See [`Entry`].
    pub last_seen: String,
    /// See [`Entry`].
    pub status: Status,
    /// See [`Entry`].
    pub assignee: Option<String>,
    /// See [`Entry`].
    pub tags: Vec<String>,
    /// See [`Entry`].
    pub suggestions: Vec<SuggestionView>,
    /// See [`Entry`].
    pub edited: bool,
    /// See [`Entry`].
    pub closed_at: Option<String>,
    /// See [`Entry`].
    pub original_stream: String,
    /// See [`Entry`].
    pub original_sequence: u64,
    /// See [`Entry`].
    pub dlq_sequence: u64,
}

impl Summary {
    /// The index's view of `e`.
    pub fn of(e: &Entry) -> Self {
        Self {
            id: e.id.clone(),
            issue: e.issue.clone(),
            issue_key: e.issue_key.clone(),
            stage: e.stage.clone(),
            reason: e.reason.clone(),
            fault: e.fault.clone(),
            error: e.error.clone(),
            subject: e.subject.clone(),
            schema: e.schema().to_owned(),
            store: e.store.clone(),
            entity: e.entity.clone(),
            order_number: e.order_number.clone(),
            customer: e.customer.clone(),
            order_version: e.order_version,
            attempts: e.attempts,
            occurrences: e.occurrences,
            replays: e.replays,
            first_seen: e.first_seen.clone(),
            last_seen: e.last_seen.clone(),
            status: e.status,
            assignee: e.assignee.clone(),
            tags: e.tags.clone(),
            suggestions: e.suggestions.clone(),
            edited: e.edited,
            closed_at: e.closed_at.clone(),
            original_stream: e.original_stream.clone(),
            original_sequence: e.original_sequence,
            dlq_sequence: e.dlq_sequence,
        }
    }

    /// A refund (or return) rather than the order itself.
    pub fn is_refund(&self) -> bool {
        ledgerline_contract::subjects::is_refund(&self.subject)
            || self.schema == "ledgerline.v1.RefundEvent"
    }
}

/// The stage as a lower-case label.
pub fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Unspecified => "unknown",
        Stage::Ingest => "ingest",
        Stage::Normalizer => "normalizer",
        Stage::XeroWriter => "xero_writer",
        Stage::Reconciler => "reconciler",
    }
}

/// The readable aggregation key: stage + fault code + field + value. With no field or value
/// to go on, a fingerprint of the error text (numbers and quoted values taken out) stands in,
/// so forty "invoice INV-1 is paid" errors are one issue, not forty.
pub fn issue_key(stage: &str, fault: &FaultView, error: &str) -> String {
    if fault.field.is_empty() && fault.value.is_empty() {
        format!("{stage}/{}/~{}", fault.code, fingerprint(error))
    } else {
        format!("{stage}/{}/{}/{}", fault.code, fault.field, fault.value)
    }
}

/// The issue's id in URLs: `iss-` and 16 hex digits of the key's hash.
pub fn issue_id(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    format!(
        "iss-{}",
        d[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The error text with what varies between orders (numbers, quoted values) taken out.
pub fn fingerprint(error: &str) -> String {
    let mut out = String::with_capacity(error.len().min(160));
    let mut quote: Option<char> = None;
    let mut last_digit = false;
    for c in error.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            out.push_str("\"*\"");
            last_digit = false;
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(c);
        if out.len() >= 120 {
            break;
        }
    }
    out
}

/// The reason class from its label (for filters).
pub fn reason_from_label(label: &str) -> Option<ReasonClass> {
    [
        ReasonClass::Malformed,
        ReasonClass::Invalid,
        ReasonClass::Unsupported,
        ReasonClass::Exhausted,
        ReasonClass::Mapping,
        ReasonClass::XeroValidation,
        ReasonClass::Policy,
    ]
    .into_iter()
    .find(|r| reason_label(*r) == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_gap_is_one_issue_and_varying_numbers_do_not_split_one() {
        let f = FaultView {
            code: "unknown_tax_code".into(),
            field: "tax_code".into(),
            value: "GST0".into(),
        };
        let a = issue_key("normalizer", &f, "item 1: tax code \"GST0\"");
        let b = issue_key("normalizer", &f, "item 7: tax code \"GST0\"");
        assert_eq!(a, "normalizer/unknown_tax_code/tax_code/GST0");
        assert_eq!(a, b);
        let p = FaultView {
            code: "policy".into(),
            ..Default::default()
        };
        assert_eq!(
            issue_key(
                "xero_writer",
                &p,
                "order SO-1042 changed (version 3) after invoice INV-9 was paid"
            ),
            issue_key(
                "xero_writer",
                &p,
                "order SO-77 changed (version 12) after invoice INV-100 was paid"
            ),
        );
        assert_ne!(
            issue_key("xero_writer", &p, "a lock date was crossed"),
            issue_key("xero_writer", &p, "order SO-77 changed")
        );
        assert!(issue_id(&a).starts_with("iss-") && issue_id(&a).len() == 20);
    }

    #[test]
    fn statuses_round_trip_and_say_what_they_allow() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!(Status::Open.is_open() && !Status::Replayed.is_open());
        assert!(Status::Replayed.replayable() && !Status::Discarded.replayable());
        assert!(
            Status::Resolved.expires() && !Status::Ignored.expires() && !Status::Open.expires()
        );
    }
}
