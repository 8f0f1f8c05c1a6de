//! Durable consumers. Each service reads through its own durable consumer, so each sees every
//! event; replicas of a service share it. A new subscriber is a new durable consumer here.

use crate::{streams, subjects};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use std::time::Duration;

/// One durable pull consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// Stream it reads.
    pub stream: &'static str,
    /// Durable name.
    pub durable: String,
    /// Subjects it is filtered on (empty: all of the stream).
    pub filter_subjects: Vec<String>,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries before the service dead-letters the message (it checks `delivered`).
    pub max_deliver: i64,
    /// Redelivery delays after a nak without delay or an ack timeout.
    pub backoff: Vec<Duration>,
    /// Unacked messages in flight across all replicas.
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// The JetStream configuration.
    pub fn config(&self) -> pull::Config {
        let (filter_subject, filter_subjects) = match self.filter_subjects.len() {
            0 => (String::new(), Vec::new()),
            1 => (self.filter_subjects[0].clone(), Vec::new()),
            _ => (String::new(), self.filter_subjects.clone()),
        };
        pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(format!("Ledgerline consumer {}", self.durable)),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: self.ack_wait,
            // The server must not stop delivering before the service had its chance to
            // dead-letter on the last attempt, so the server's limit is one higher.
            max_deliver: self.max_deliver + 1,
            backoff: self.backoff.clone(),
            max_ack_pending: self.max_ack_pending,
            filter_subject,
            filter_subjects,
            ..Default::default()
        }
    }
}

fn backoff() -> Vec<Duration> {
    [1, 5, 30, 120, 600].map(Duration::from_secs).to_vec()
}

/// The writer's: JetStream lets a BackOff list replace ack_wait, so its first step is how long a
/// delivery may go without an ack or in-progress ack. The writer holds messages for seconds
/// (batch linger, a spent minute window, a held backfill) and sends in-progress acks every
/// 3 s; a crashed writer's messages come back after 10 s.
fn writer_backoff() -> Vec<Duration> {
    [10, 30, 120, 300, 600].map(Duration::from_secs).to_vec()
}

/// The normalizer's consumer on RAW.
pub fn normalizer() -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::RAW.name,
        durable: "normalizer".to_owned(),
        filter_subjects: vec![],
        ack_wait: Duration::from_secs(30),
        max_deliver: 5,
        backoff: backoff(),
        max_ack_pending: 1000,
    }
}

/// The writer's consumer name for one Xero tenant: `xero-writer-<tenant>`.
///
/// The rule: one durable consumer per tenant, filtered on the stores that tenant owns, so a
/// tenant that is rate-limited, disconnected or behind an open breaker stops being pulled while
/// the others go on. Replicas share it.
pub fn writer_orders_name(tenant: &str) -> String {
    format!("xero-writer-{}", consumer_token(tenant))
}

/// The writer's ORDERS consumer for one tenant and its stores.
pub fn writer_orders(tenant: &str, stores: &[String]) -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::ORDERS.name,
        durable: writer_orders_name(tenant),
        filter_subjects: stores.iter().map(|s| subjects::orders_store(s)).collect(),
        // Xero calls are slow and batched; the writer sends Progress while waiting.
        ack_wait: Duration::from_secs(60),
        max_deliver: 20,
        backoff: writer_backoff(),
        max_ack_pending: 2000,
    }
}

/// The writer's CUSTOMERS consumer for one tenant and its stores.
pub fn writer_customers(tenant: &str, stores: &[String]) -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::CUSTOMERS.name,
        durable: format!("xero-writer-customers-{}", consumer_token(tenant)),
        filter_subjects: stores
            .iter()
            .map(|s| subjects::customers_store(s))
            .collect(),
        ack_wait: Duration::from_secs(60),
        max_deliver: 20,
        backoff: writer_backoff(),
        max_ack_pending: 1000,
    }
}

/// The reconciler's consumers: the store's side (ORDERS), the writer's facts (XERO: documents
/// and contacts, not connection or usage events), what it observed in Xero (OBSERVED), Xero's
/// webhook deliveries to look up (XERO_HOOKS), and dead letters (DLQ: an order held in review
/// is explained as such in the reconciliation report).
pub fn reconciler() -> [ConsumerSpec; 5] {
    let base = |stream: &'static str, durable: &str, filters: Vec<String>| ConsumerSpec {
        stream,
        durable: durable.to_owned(),
        filter_subjects: filters,
        ack_wait: Duration::from_secs(30),
        max_deliver: 10,
        backoff: backoff(),
        max_ack_pending: 2000,
    };
    [
        base(streams::ORDERS.name, "reconciler-orders", vec![]),
        base(
            streams::XERO.name,
            "reconciler-xero",
            ["invoice", "credit_note", "payment", "allocation", "contact"]
                .map(|k| format!("xero.*.{k}.>"))
                .to_vec(),
        ),
        base(streams::OBSERVED.name, "reconciler-observed", vec![]),
        base(streams::XERO_HOOKS.name, "reconciler-hooks", vec![]),
        base(streams::DLQ.name, "reconciler-dlq", vec![]),
    ]
}

/// The writer's consumer of repair requests for one tenant.
pub fn writer_repairs(tenant: &str) -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::REPAIRS.name,
        durable: format!("xero-writer-repairs-{}", consumer_token(tenant)),
        filter_subjects: vec![subjects::repairs_of(tenant)],
        ack_wait: Duration::from_secs(60),
        max_deliver: 10,
        backoff: writer_backoff(),
        max_ack_pending: 100,
    }
}

/// The dead-letter service's consumer on DLQ.
pub fn dead_letter() -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::DLQ.name,
        durable: "dead-letter".to_owned(),
        filter_subjects: vec![],
        ack_wait: Duration::from_secs(30),
        max_deliver: 10,
        backoff: backoff(),
        max_ack_pending: 1000,
    }
}

/// The dead-letter service's consumer on XERO: invoice and credit-note facts resolve the
/// entries of orders since written, and usage alerts go out on its alert channel.
pub fn dead_letter_facts() -> ConsumerSpec {
    ConsumerSpec {
        stream: streams::XERO.name,
        durable: "dead-letter-facts".to_owned(),
        filter_subjects: vec![
            "xero.*.invoice.>".to_owned(),
            "xero.*.credit_note.>".to_owned(),
            "xero.*.usage.*".to_owned(),
        ],
        ack_wait: Duration::from_secs(30),
        max_deliver: 10,
        backoff: backoff(),
        max_ack_pending: 1000,
    }
}

/// Consumer names allow letters, digits, `-` and `_`; anything else in a tenant id becomes `_`.
fn consumer_token(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
