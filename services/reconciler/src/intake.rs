//! The projection's inputs: the store's events (ORDERS), the writer's facts (XERO), what the
//! reconciler read in Xero (OBSERVED) and dead letters (DLQ). Each message updates one order's
//! view.

use crate::projection::Projection;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{
    DeadLetter, OrderEvent, RefundEvent, XeroDocumentKind, XeroFact, XeroObservation,
};
use ledgerline_contract::{Schema, headers};
use ledgerline_platform::consume::Outcome;
use prost::Message as _;
use std::time::Duration;

/// When the stream stored `m`, RFC 3339 (the SLAs count from when the store's event arrived).
fn stored_at(m: &Message) -> String {
    m.info()
        .ok()
        .and_then(|i| {
            chrono::DateTime::from_timestamp(i.published.unix_timestamp(), i.published.nanosecond())
        })
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn schema(m: &Message) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

/// An ORDERS message.
pub async fn order_event(p: &Projection, m: &Message) -> Outcome {
    let at = stored_at(m);
    let result = match schema(m).as_str() {
        OrderEvent::NAME => {
            let Ok(e) = OrderEvent::decode(m.payload.as_ref()) else {
                return Outcome::Term;
            };
            let Some(o) = e.order.clone() else {
                return Outcome::Ack;
            };
            p.update(&o.store, &o.id, false, |v| v.apply_order(&e, &at))
                .await
        }
        RefundEvent::NAME => {
            let Ok(e) = RefundEvent::decode(m.payload.as_ref()) else {
                return Outcome::Term;
            };
            let store = e.meta.as_ref().map(|m| m.store.clone()).unwrap_or_default();
            p.update(&store, &e.order_id, false, |v| v.apply_refund(&e, &at))
                .await
        }
        _ => return Outcome::Ack,
    };
    outcome(result)
}

/// A XERO fact.
pub async fn fact(p: &Projection, m: &Message) -> Outcome {
    let Ok(f) = XeroFact::decode(m.payload.as_ref()) else {
        return Outcome::Ack;
    };
    let Some((store, order_id)) = f.order_key.split_once('/') else {
        return Outcome::Ack;
    };
    // The link first, so an observation of the document finds its order.
    p.link(&f.xero_id, &f.order_key).await;
    if f.kind() == XeroDocumentKind::Contact {
        p.link_contact(&f.xero_id, &f.order_key).await;
    }
    outcome(p.update(store, order_id, false, |v| v.apply_fact(&f)).await)
}

/// An observation. Its order is found through the writer's facts; one that arrives before the
/// fact is tried again shortly, and one for a document the writer never wrote is ignored.
pub async fn observation(p: &Projection, m: &Message) -> Outcome {
    let Ok(o) = XeroObservation::decode(m.payload.as_ref()) else {
        return Outcome::Ack;
    };
    if o.kind() == XeroDocumentKind::Contact {
        for key in p.orders_of_contact(&o.xero_id).await {
            if let Some((store, id)) = key.split_once('/') {
                let r = p
                    .update(store, id, false, |v| v.apply_observation(&o))
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "Contact observation not applied yet.");
                    return Outcome::Nak(Some(Duration::from_secs(1)));
                }
            }
        }
        return Outcome::Ack;
    }
    let id = if o.kind() == XeroDocumentKind::Payment {
        &o.document_id
    } else {
        &o.xero_id
    };
    let Some(key) = p.order_of(id).await.or(match o.kind() {
        XeroDocumentKind::Payment => p.order_of(&o.xero_id).await,
        _ => None,
    }) else {
        let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
        if delivered < 5 {
            // The writer's fact may be a moment behind Xero's webhook.
            return Outcome::Nak(Some(Duration::from_millis(500 * delivered as u64)));
        }
        tracing::debug!(xero_id = %o.xero_id, number = %o.number, "A Xero document no order of ours names: ignored.");
        metrics::counter!("recon_observations_unmatched_total").increment(1);
        return Outcome::Ack;
    };
    let Some((store, order_id)) = key.split_once('/') else {
        return Outcome::Ack;
    };
    if o.kind() == XeroDocumentKind::Payment {
        p.link(&o.xero_id, &key).await;
    }
    outcome(
        p.update(store, order_id, false, |v| v.apply_observation(&o))
            .await,
    )
}

/// A dead letter about an order (entity `<store>/<order id>`; customers' are not orders): the
/// order waits in the review queue until the writer writes it.
pub async fn dead_letter(p: &Projection, m: &Message) -> Outcome {
    let Ok(d) = DeadLetter::decode(m.payload.as_ref()) else {
        return Outcome::Ack;
    };
    let Some((store, order_id)) = d.entity_key.split_once('/') else {
        return Outcome::Ack;
    };
    if order_id.is_empty() || order_id.contains('/') {
        return Outcome::Ack;
    }
    outcome(
        p.update(store, order_id, false, |v| v.apply_dead_letter(&d))
            .await,
    )
}

fn outcome(r: Result<(), crate::projection::ProjectionError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ack,
        Err(error) => {
            tracing::warn!(%error, "Projection not updated; will retry.");
            Outcome::Nak(Some(Duration::from_secs(1)))
        }
    }
}
