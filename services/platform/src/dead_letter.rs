//! The one way a stage builds and stores a dead letter (contract v2).
//!
//! Every stage used to build its own, with different id rules, timestamp formats and attempt
//! floors. Here the id is derived from what the entry is about (stage, reason, subject, payload,
//! `Nats-Msg-Id`, fault, error and an optional revision), so a redelivery of the same failure stores it once
//! within DLQ's duplicate window, while the same message failing differently (after a mapping
//! change) is a new entry.

use crate::publish::{PublishError, Published, Publisher};
use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{DeadLetter, Fault, ReasonClass, Stage, Suggestion};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Payloads longer than this are cut in the copy (the original stays in its stream, found by
/// `original_stream` and `original_sequence`): a dead letter must fit NATS's default 1 MiB
/// `max_payload` with its headers and suggestions.
pub const PAYLOAD_CAP: usize = 512 * 1024;

/// The contract version this builder writes into [`DeadLetter::contract_version`].
pub const CONTRACT_VERSION: u32 = 2;

/// A dead letter being built; [`DeadLetterBuilder::build`] or [`DeadLetterBuilder::publish`]
/// finishes it.
#[derive(Debug, Clone)]
pub struct DeadLetterBuilder {
    stage: Stage,
    reason: ReasonClass,
    error: String,
    subject: String,
    headers: BTreeMap<String, String>,
    payload: Vec<u8>,
    stream: String,
    sequence: u64,
    attempts: u32,
    store: String,
    entity: String,
    occurred_at: String,
    order_number: String,
    tenant: String,
    fault: Option<Fault>,
    suggestions: Vec<Suggestion>,
    revision: String,
}

impl DeadLetterBuilder {
    /// A dead letter for a payload read from `subject`.
    pub fn new(
        stage: Stage,
        reason: ReasonClass,
        error: impl Into<String>,
        subject: &str,
        payload: &[u8],
    ) -> Self {
        Self {
            stage,
            reason,
            error: error.into(),
            subject: subject.to_owned(),
            headers: BTreeMap::new(),
            payload: payload.to_vec(),
            stream: String::new(),
            sequence: 0,
            attempts: 1,
            store: String::new(),
            entity: String::new(),
            occurred_at: String::new(),
            order_number: String::new(),
            tenant: String::new(),
            fault: None,
            suggestions: Vec::new(),
            revision: String::new(),
        }
    }

    /// A dead letter for a JetStream message: subject, headers, payload, its stream and
    /// sequence, and the delivery count as attempts.
    pub fn from_message(
        stage: Stage,
        reason: ReasonClass,
        error: impl Into<String>,
        msg: &Message,
    ) -> Self {
        let mut b = Self::new(stage, reason, error, &msg.subject, &msg.payload)
            .headers(msg.headers.as_ref());
        if let Ok(info) = msg.info() {
            b = b
                .origin(info.stream, info.stream_sequence)
                .attempts(info.delivered);
        }
        b
    }

    /// The original headers (the first value of each).
    pub fn headers(mut self, headers: Option<&HeaderMap>) -> Self {
        if let Some(h) = headers {
            for (name, values) in h.iter() {
                if let Some(v) = values.first() {
                    self.headers.insert(name.to_string(), v.as_str().to_owned());
                }
            }
        }
        self
    }

    /// The stream and sequence the original is stored at.
    pub fn origin(mut self, stream: &str, sequence: u64) -> Self {
        self.stream = stream.to_owned();
        self.sequence = sequence;
        self
    }

    /// Deliveries so far (at least 1 is recorded).
    pub fn attempts(mut self, delivered: i64) -> Self {
        self.attempts = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
        self
    }

    /// The store, when known.
    pub fn store(mut self, store: &str) -> Self {
        self.store = store.to_owned();
        self
    }

    /// The order or customer key, when known.
    pub fn entity(mut self, key: &str) -> Self {
        self.entity = key.to_owned();
        self
    }

    /// When the order or customer came about in the store, when known.
    pub fn occurred_at(mut self, at: &str) -> Self {
        self.occurred_at = at.to_owned();
        self
    }

    /// The order's number in the store, when known.
    pub fn order_number(mut self, number: &str) -> Self {
        self.order_number = number.to_owned();
        self
    }

    /// The Xero tenant, when known.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.to_owned();
        self
    }

    /// What exactly is at fault; without one, the reason class is the fault's code.
    pub fn fault(mut self, fault: Option<Fault>) -> Self {
        self.fault = fault;
        self
    }

    /// Ranked fixes.
    pub fn suggestions(mut self, suggestions: Vec<Suggestion>) -> Self {
        self.suggestions = suggestions;
        self
    }

    /// A revision the outcome depends on (the normalizer's mapping revision): the same message
    /// failing under another revision is a new entry.
    pub fn revision(mut self, revision: &str) -> Self {
        self.revision = revision.to_owned();
        self
    }

    /// The finished message.
    pub fn build(self) -> DeadLetter {
        let fault = self.fault.unwrap_or_else(|| Fault {
            code: reason_label(self.reason).to_owned(),
            field: String::new(),
            value: String::new(),
        });
        let payload_hash = Sha256::digest(&self.payload);
        // A replay carries a new `Nats-Msg-Id`: failing again, it is a new dead letter (which the
        // review queue folds into the entry it replays) rather than a duplicate DLQ drops.
        let msg_id = self
            .headers
            .get(ledgerline_contract::headers::MSG_ID)
            .map(String::as_str)
            .unwrap_or_default();
        let mut id_src = Sha256::new();
        for part in [
            self.stage.as_str_name().as_bytes(),
            self.reason.as_str_name().as_bytes(),
            self.subject.as_bytes(),
            &payload_hash[..],
            fault.code.as_bytes(),
            fault.field.as_bytes(),
            fault.value.as_bytes(),
            self.error.as_bytes(),
            self.revision.as_bytes(),
            msg_id.as_bytes(),
        ] {
            id_src.update((part.len() as u64).to_be_bytes());
            id_src.update(part);
        }
        let id = format!("dl-{}", &hex(&id_src.finalize())[..40]);
        let original_size = self.payload.len() as u64;
        let mut payload = self.payload;
        let truncated = payload.len() > PAYLOAD_CAP;
        payload.truncate(PAYLOAD_CAP);
        DeadLetter {
            id,
            stage: self.stage as i32,
            reason_class: self.reason as i32,
            error: self.error,
            original_subject: self.subject,
            original_headers: self.headers.into_iter().collect(),
            original_payload: payload,
            attempts: self.attempts,
            suggestions: self.suggestions,
            failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            store: self.store,
            entity_key: self.entity,
            occurred_at: self.occurred_at,
            order_number: self.order_number,
            tenant: self.tenant,
            original_stream: self.stream,
            original_sequence: self.sequence,
            fault: Some(fault),
            payload_truncated: truncated,
            original_size,
            contract_version: CONTRACT_VERSION,
        }
    }

    /// Builds and stores it on `dlq.<stage>.<reason>`, awaiting the PubAck. A caller must not
    /// ack the original unless this succeeded.
    pub async fn publish(
        self,
        publisher: &Publisher,
    ) -> Result<(DeadLetter, Published), PublishError> {
        let dl = self.build();
        let subject = subjects::dlq(dl.stage(), dl.reason_class());
        let published = publisher
            .publish_proto(subject, &dl.id, &dl, HeaderMap::new())
            .await?;
        Ok((dl, published))
    }
}

/// The reason class as a short lower-case label (`mapping`, `xero_validation`), for metrics
/// and as the fault code when nothing finer is known.
pub fn reason_label(reason: ReasonClass) -> &'static str {
    match reason {
        ReasonClass::Unspecified => "unspecified",
        ReasonClass::Malformed => "malformed",
        ReasonClass::Invalid => "invalid",
        ReasonClass::Unsupported => "unsupported",
        ReasonClass::Exhausted => "exhausted",
        ReasonClass::Mapping => "mapping",
        ReasonClass::XeroValidation => "xero_validation",
        ReasonClass::Policy => "policy",
    }
}

/// A fault with its code, field and value.
pub fn fault(code: &str, field: &str, value: &str) -> Option<Fault> {
    Some(Fault {
        code: code.to_owned(),
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> DeadLetterBuilder {
        DeadLetterBuilder::new(
            Stage::Normalizer,
            ReasonClass::Mapping,
            "tax code \"GST0\" is not in the mapping",
            "raw.clarity.main.order_created",
            b"{}",
        )
        .fault(fault("unknown_tax_code", "tax_code", "GST0"))
        .revision("r1")
    }

    #[test]
    fn one_failure_has_one_id_and_another_failure_another() {
        let a = base().attempts(3).build();
        assert_eq!(
            a.id,
            base().attempts(7).build().id,
            "attempts do not change the id"
        );
        assert_ne!(a.id, base().revision("r2").build().id);
        assert_ne!(
            a.id,
            base()
                .fault(fault("unknown_tax_code", "tax_code", "GST5"))
                .build()
                .id
        );
        assert!(a.id.starts_with("dl-") && a.id.len() == 43);
        assert_eq!(a.contract_version, 2);
        assert_eq!(a.attempts, 3);
        assert!(
            a.failed_at.ends_with('Z') && a.failed_at.len() == 24,
            "{}",
            a.failed_at
        );
    }

    #[test]
    fn attempts_have_a_floor_of_one_and_the_fault_defaults_to_the_reason() {
        let dl = DeadLetterBuilder::new(Stage::XeroWriter, ReasonClass::Policy, "e", "s", b"x")
            .attempts(0)
            .build();
        assert_eq!(dl.attempts, 1);
        assert_eq!(dl.fault.unwrap().code, "policy");
    }

    #[test]
    fn a_payload_over_the_cap_is_cut_and_says_so() {
        let big = vec![b'a'; PAYLOAD_CAP + 10];
        let dl = DeadLetterBuilder::new(Stage::Normalizer, ReasonClass::Invalid, "e", "s", &big)
            .origin("RAW", 42)
            .build();
        assert!(dl.payload_truncated);
        assert_eq!(dl.original_payload.len(), PAYLOAD_CAP);
        assert_eq!(dl.original_size, (PAYLOAD_CAP + 10) as u64);
        assert_eq!(
            (dl.original_stream.as_str(), dl.original_sequence),
            ("RAW", 42)
        );
        let small = base().build();
        assert!(!small.payload_truncated);
        assert_eq!(small.original_size, 2);
    }
}
