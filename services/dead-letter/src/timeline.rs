//! "What happened to SO-1042?": one order's story across the stages, read by subject. Its
//! canonical events come from ORDERS by the id or number in their subjects, its webhooks from
//! RAW by the sequences those events (and its dead letters) name, its writes from XERO by the
//! order key in their subjects, and its dead letters from the review queue. Nothing is scanned.

use crate::auth::Caller;
use crate::store::Store;
use async_nats::jetstream::Context;
use ledgerline_contract::v1::{
    OrderEvent, OrderEventType, OrderStatus, RefundEvent, XeroDocumentKind, XeroFact, XeroVerb,
};
use ledgerline_contract::{Schema, headers, streams, subjects};
use ledgerline_platform::read::{self, ReadError, Stored};
use prost::Message as _;
use serde::Serialize;
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// At most this many messages are read from each stream for one order.
const PER_STREAM: usize = 500;

/// One order across the stages, oldest first.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Timeline {
    /// Store.
    pub store: String,
    /// The order's id in the store (empty when nothing was found).
    pub order_id: String,
    /// The order's number.
    pub order_number: String,
    /// What happened, oldest first.
    pub steps: Vec<Step>,
    /// More was stored than was read (over 500 messages in a stream).
    pub truncated: bool,
}

/// Which stage a step is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A webhook (or resync) stored in RAW.
    Webhook,
    /// A canonical event on ORDERS.
    Event,
    /// A write to Xero (a fact on XERO).
    Xero,
    /// A dead letter in the review queue.
    DeadLetter,
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Step {
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// Which stage.
    pub kind: StepKind,
    /// In a few words, e.g. `invoice created SO-001042`.
    pub title: String,
    /// Named details, in order (ids, versions, amounts).
    pub details: Vec<Detail>,
    /// Where it is stored (`RAW`, `ORDERS`, `XERO`) and at which sequence; the review queue's
    /// entry id for a dead letter.
    pub source: String,
    /// See `source`.
    pub sequence: u64,
}

/// A named detail of a step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Detail {
    /// e.g. `webhook id`.
    pub name: String,
    /// e.g. `evt_01JD...`.
    pub value: String,
}

fn detail(name: &str, value: impl Into<String>) -> Detail {
    Detail {
        name: name.to_owned(),
        value: value.into(),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The timeline of the order `key` (its id, or else its number) in `store`, as `caller` may see
/// it (empty for a store they may not see).
pub async fn of_order(
    js: &Context,
    queue: &Store,
    caller: &Caller,
    store: &str,
    key: &str,
) -> Result<Timeline, ReadError> {
    let mut t = Timeline {
        store: store.to_owned(),
        ..Default::default()
    };
    if !caller.sees(store) || key.trim().is_empty() {
        return Ok(t);
    }
    let key = key.trim();
    // By id first; an order number otherwise.
    let (mut events, mut more) = read_events(js, subjects::orders_of(store, key)).await?;
    events.retain(|e| e.order_id == key);
    if events.is_empty() {
        (events, more) = read_events(js, subjects::orders_numbered(store, key)).await?;
        events.retain(|e| e.order_number == key);
    }
    t.truncated |= more;
    if let Some(e) = events.first() {
        t.order_id = e.order_id.clone();
        t.order_number = e.order_number.clone();
    }
    // Dead letters: by the entity, or (for an order no event names) by id or number.
    let entries = queue.scan(|it| {
        it.filter(|v| {
            let e = &v.entry;
            e.store == store
                && if t.order_id.is_empty() {
                    e.entity == format!("{store}/{key}") || e.order_number == key
                } else {
                    e.entity == format!("{store}/{}", t.order_id)
                }
        })
        .map(|v| v.entry.clone())
        .collect::<Vec<_>>()
    });
    if t.order_id.is_empty()
        && let Some(e) = entries.first()
    {
        t.order_id = e
            .entity
            .split_once('/')
            .map_or(String::new(), |(_, id)| id.to_owned());
        t.order_number = e.order_number.clone();
    }
    if t.order_id.is_empty() {
        return Ok(t);
    }
    let mut raw_sequences = BTreeSet::new();
    for e in &events {
        if e.raw_sequence > 0 {
            raw_sequences.insert(e.raw_sequence);
        }
        t.steps.push(e.step.clone());
    }
    for e in &entries {
        if e.original_stream == streams::RAW.name && e.original_sequence > 0 {
            raw_sequences.insert(e.original_sequence);
        }
        t.steps.push(Step {
            at: e.last_seen.clone(),
            kind: StepKind::DeadLetter,
            title: format!("dead letter at {}: {}", e.stage, e.issue_key),
            details: vec![
                detail("status", e.status.as_str()),
                detail("error", e.error.clone()),
                detail("first seen", e.first_seen.clone()),
                detail("attempts", e.attempts.to_string()),
            ],
            source: e.id.clone(),
            sequence: e.dlq_sequence,
        });
    }
    for seq in raw_sequences {
        if let Some(m) = read::at(js, streams::RAW.name, seq).await? {
            t.steps.push(webhook_step(&m));
        }
    }
    let (facts, more) = read::by_subjects(
        js,
        streams::XERO.name,
        vec![subjects::xero_of(store, &t.order_id)],
        PER_STREAM,
    )
    .await?;
    t.truncated |= more;
    let order_key = format!("{store}/{}", t.order_id);
    for m in &facts {
        if let Ok(f) = XeroFact::decode(m.payload.as_ref())
            && f.order_key == order_key
        {
            t.steps.push(xero_step(&f, m));
        }
    }
    t.steps.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(t)
}

/// A canonical event of the order, read from ORDERS.
struct OrderStep {
    order_id: String,
    order_number: String,
    raw_sequence: u64,
    step: Step,
}

async fn read_events(js: &Context, filter: String) -> Result<(Vec<OrderStep>, bool), ReadError> {
    let (messages, more) =
        read::by_subjects(js, streams::ORDERS.name, vec![filter], PER_STREAM).await?;
    Ok((messages.iter().filter_map(event_step).collect(), more))
}

fn event_step(m: &Stored) -> Option<OrderStep> {
    let at = rfc3339(m.stored_at);
    let id = m.header(headers::MSG_ID).unwrap_or_default().to_owned();
    match m.header(headers::SCHEMA)? {
        OrderEvent::NAME => {
            let e = OrderEvent::decode(m.payload.as_ref()).ok()?;
            let o = e.order.as_ref()?;
            let meta = e.meta.clone().unwrap_or_default();
            let ty = OrderEventType::try_from(e.r#type).unwrap_or_default();
            let status = OrderStatus::try_from(o.status).unwrap_or_default();
            let total = o
                .totals
                .as_ref()
                .and_then(|t| t.total.as_ref())
                .map(|m| format!("{} {}", m.amount, o.currency))
                .unwrap_or_default();
            Some(OrderStep {
                order_id: o.id.clone(),
                order_number: o.number.clone(),
                raw_sequence: meta.raw_sequence,
                step: Step {
                    at,
                    kind: StepKind::Event,
                    title: format!(
                        "order {} (version {})",
                        subjects::order_type_token(ty),
                        o.version
                    ),
                    details: vec![
                        detail("status", status_name(status)),
                        detail("total", total),
                        detail("event id", id),
                        detail("mapping revision", meta.mapping_revision),
                    ],
                    source: streams::ORDERS.name.to_owned(),
                    sequence: m.sequence,
                },
            })
        }
        RefundEvent::NAME => {
            let e = RefundEvent::decode(m.payload.as_ref()).ok()?;
            let meta = e.meta.clone().unwrap_or_default();
            let amount = e
                .refund
                .as_ref()
                .and_then(|r| r.amount.as_ref())
                .map(|a| format!("{} {}", a.amount, a.currency))
                .unwrap_or_default();
            Some(OrderStep {
                order_id: e.order_id.clone(),
                order_number: e.order_number.clone(),
                raw_sequence: meta.raw_sequence,
                step: Step {
                    at,
                    kind: StepKind::Event,
                    title: format!("refund (order version {})", e.order_version),
                    details: vec![
                        detail("amount", amount),
                        detail("event id", id),
                        detail("mapping revision", meta.mapping_revision),
                    ],
                    source: streams::ORDERS.name.to_owned(),
                    sequence: m.sequence,
                },
            })
        }
        _ => None,
    }
}

fn status_name(s: OrderStatus) -> String {
    s.as_str_name()
        .trim_start_matches("ORDER_STATUS_")
        .to_ascii_lowercase()
}

fn webhook_step(m: &Stored) -> Step {
    let topic = m
        .header(headers::CLARITY_TOPIC)
        .map(str::to_owned)
        .unwrap_or_else(|| m.subject.splitn(4, '.').nth(3).unwrap_or("").to_owned());
    let origin = m.header(headers::ORIGIN).unwrap_or("webhook");
    let at = m
        .header(headers::RECEIVED_AT)
        .map(str::to_owned)
        .unwrap_or_else(|| rfc3339(m.stored_at));
    let mut details = vec![detail(
        "webhook id",
        m.header(headers::MSG_ID).unwrap_or_default(),
    )];
    if let Some(a) = m.header(headers::CLARITY_ATTEMPT) {
        details.push(detail("attempt", a));
    }
    details.push(detail("received", at.clone()));
    Step {
        at,
        kind: StepKind::Webhook,
        title: format!("{topic} ({origin})"),
        details,
        source: streams::RAW.name.to_owned(),
        sequence: m.sequence,
    }
}

fn xero_step(f: &XeroFact, m: &Stored) -> Step {
    let kind = match f.kind() {
        XeroDocumentKind::Invoice => "invoice",
        XeroDocumentKind::CreditNote => "credit note",
        XeroDocumentKind::Payment => "payment",
        XeroDocumentKind::Allocation => "allocation",
        XeroDocumentKind::Contact => "contact",
        XeroDocumentKind::Unspecified => "document",
    };
    let verb = match f.verb() {
        XeroVerb::Created => "created",
        XeroVerb::Updated => "updated",
        XeroVerb::Voided => "voided",
        XeroVerb::Deleted => "deleted",
        XeroVerb::Adopted => "adopted",
        XeroVerb::Recorded => "recorded",
        XeroVerb::Unspecified => "written",
    };
    let money = |m: &Option<ledgerline_contract::v1::Money>| {
        m.as_ref()
            .map(|m| format!("{} {}", m.amount, m.currency))
            .unwrap_or_default()
    };
    let mut details = vec![detail("Xero id", f.xero_id.clone())];
    if f.total.is_some() {
        details.push(detail("total", money(&f.total)));
    }
    if f.amount_due.is_some() {
        details.push(detail("amount due", money(&f.amount_due)));
    }
    details.push(detail("status", f.status.clone()));
    details.push(detail("order version", f.order_version.to_string()));
    details.push(detail("tenant", f.tenant_id.clone()));
    Step {
        at: if f.written_at.is_empty() {
            rfc3339(m.stored_at)
        } else {
            normalise_time(&f.written_at)
        },
        kind: StepKind::Xero,
        title: format!("{kind} {verb} {}", f.number).trim_end().to_owned(),
        details,
        source: streams::XERO.name.to_owned(),
        sequence: m.sequence,
    }
}

/// RFC 3339 in UTC with milliseconds, so steps sort by their text.
fn normalise_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| rfc3339(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| t.to_owned())
}
