//! Repair requests from the reconciler (REPAIRS, one durable consumer per tenant): the ledger
//! entry of an order is checked against Xero (its invoice read by id), corrected where Xero
//! differs, and the order's latest snapshot is sent through the writer again, so the normal
//! path converges it:
//! - an invoice voided or deleted in Xero while the store's order is live is superseded, and
//!   the order is invoiced again as `<number>-R<k>` (Xero keeps numbers unique);
//! - a payment the ledger recorded but Xero no longer holds is applied again;
//! - a change made in Xero (a total edited) is written over only when the request allows it
//!   (the reconciler's policy), else left as it is;
//! - what the store voided is voided (the snapshot's plan does it).
//!
//! The snapshot is republished to ORDERS under `<event id>.repair.<n>`; the ledger keeps the
//! effect exactly-once, as for any redelivery.

use crate::ledger::{self, Superseded};
use async_nats::jetstream::kv;
use ledgerline_contract::v1::{OrderEvent, RepairRequest, XeroDocumentKind, XeroFact, XeroVerb};
use ledgerline_contract::{Schema, headers, streams, subjects};
use ledgerline_platform::consume::Outcome;
use ledgerline_platform::publish::Publisher;
use ledgerline_xero_client::{Client, XeroError};
use prost::Message as _;
use reqwest::Method;
use std::time::Duration;

/// What a repair changed in the ledger before sending the order again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Corrections {
    /// The invoice Xero voided or deleted, superseded.
    pub superseded: Option<String>,
    /// Payments Xero no longer holds, to apply again.
    pub payments: Vec<String>,
    /// The invoice's content to be written again (a change made in Xero overwritten).
    pub rewrite: bool,
}

/// Handles one repair request.
pub async fn handle(
    client: &Client,
    ledger_kv: &kv::Store,
    publisher: &Publisher,
    req: &RepairRequest,
) -> Outcome {
    match repair(client, ledger_kv, publisher, req).await {
        Ok(c) => {
            tracing::info!(order = %req.order_number, finding = %req.finding_kind, corrections = ?c, "Repair: order sent through again.");
            metrics::counter!("xero_writer_repairs_total", "kind" => req.finding_kind.clone(), "outcome" => "sent").increment(1);
            Outcome::Ack
        }
        Err(RepairError::Nothing(why)) => {
            tracing::info!(order = %req.order_number, finding = %req.finding_kind, why, "Repair: nothing to send.");
            metrics::counter!("xero_writer_repairs_total", "kind" => req.finding_kind.clone(), "outcome" => "nothing").increment(1);
            Outcome::Ack
        }
        Err(RepairError::Again(why)) => {
            tracing::warn!(order = %req.order_number, why, "Repair: not now; tried again.");
            Outcome::Nak(Some(Duration::from_secs(5)))
        }
    }
}

enum RepairError {
    /// Nothing the writer can do (no snapshot of the order).
    Nothing(String),
    /// Try again later (Xero, NATS).
    Again(String),
}

impl From<XeroError> for RepairError {
    fn from(e: XeroError) -> Self {
        RepairError::Again(e.to_string())
    }
}

async fn repair(
    client: &Client,
    ledger_kv: &kv::Store,
    publisher: &Publisher,
    req: &RepairRequest,
) -> Result<Corrections, RepairError> {
    let js = publisher.jetstream();
    // The order's newest snapshot, from ORDERS by subject.
    let (events, _) = ledgerline_platform::read::by_subjects(
        js,
        streams::ORDERS.name,
        vec![subjects::orders_of(&req.store, &req.order_id)],
        1000,
    )
    .await
    .map_err(|e| RepairError::Again(e.to_string()))?;
    let newest = events
        .iter()
        .filter(|m| m.header(headers::SCHEMA) == Some(OrderEvent::NAME))
        .filter_map(|m| OrderEvent::decode(m.payload.as_ref()).ok().map(|e| (m, e)))
        .filter(|(_, e)| e.order.as_ref().is_some_and(|o| o.id == req.order_id))
        .max_by_key(|(_, e)| e.order.as_ref().map_or(0, |o| o.version));
    let Some((stored, event)) = newest else {
        return Err(RepairError::Nothing(
            "ORDERS holds no snapshot of the order (a resync from the store brings it)".into(),
        ));
    };
    let key = ledger::key(client.tenant(), &req.store, &req.order_id);
    let mut corrections = Corrections::default();
    let mut superseded_id = None;
    for _ in 0..10 {
        let mut v = ledger::read(ledger_kv, &key)
            .await
            .map_err(RepairError::Again)?;
        corrections = Corrections::default();
        if !v.entry.invoice_id.is_empty() {
            let r = client
                .call(
                    Method::GET,
                    &format!("/Invoices/{}", v.entry.invoice_id),
                    &[],
                    None,
                )
                .await?;
            if let Some(inv) = r.invoices.into_iter().next() {
                let gone = inv.status == "VOIDED" || inv.status == "DELETED";
                let e = &mut v.entry;
                if gone && !e.voided {
                    // Voided or deleted in Xero, the order live in the store: issue it again.
                    corrections.superseded = Some(e.invoice_number.clone());
                    superseded_id = Some(e.invoice_id.clone());
                    e.superseded.push(Superseded {
                        invoice_id: std::mem::take(&mut e.invoice_id),
                        invoice_number: std::mem::take(&mut e.invoice_number),
                        credit_note_id: String::new(),
                        credit_note_number: String::new(),
                        total: e.total,
                    });
                    e.content_hash.clear();
                    e.status.clear();
                    e.payments.clear();
                    e.payments_in_flight.clear();
                } else if !gone {
                    let held: Vec<&str> = inv
                        .payments
                        .iter()
                        .filter(|p| p.status != "DELETED")
                        .map(|p| p.payment_id.as_str())
                        .collect();
                    let lost: Vec<String> = e
                        .payments
                        .iter()
                        .filter(|(_, p)| !held.contains(&p.payment_id.as_str()))
                        .map(|(source, _)| source.clone())
                        .collect();
                    for source in &lost {
                        e.payments.remove(source);
                        *e.payment_rounds.entry(source.clone()).or_insert(0) += 1;
                    }
                    e.status = inv.status.clone();
                    corrections.payments = lost;
                    let edited = inv.total.is_some_and(|t| t != e.total);
                    if edited && req.overwrite_xero_changes {
                        e.content_hash.clear();
                        corrections.rewrite = true;
                    }
                }
            }
        }
        // Converge again: the snapshot is not "seen" any more.
        v.entry.version = 0;
        v.entry.mapping_revision.clear();
        match ledger::write(ledger_kv, &key, &mut v).await {
            Ok(()) => break,
            Err(e) if e.contains("wrong last sequence") || e.contains("exists") => continue,
            Err(e) => return Err(RepairError::Again(e)),
        }
    }
    if let Some(gone) = &superseded_id {
        // The writer takes the void (or deletion) as its own now: the reconciler's record of
        // what was written agrees with Xero again.
        let f = XeroFact {
            fact_id: format!("xf-superseded-{}", short(gone)),
            tenant_id: client.tenant().to_owned(),
            kind: XeroDocumentKind::Invoice as i32,
            verb: XeroVerb::Voided as i32,
            xero_id: gone.clone(),
            number: corrections.superseded.clone().unwrap_or_default(),
            store: req.store.clone(),
            order_key: format!("{}/{}", req.store, req.order_id),
            status: "VOIDED".into(),
            written_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        };
        let subject = subjects::xero(
            client.tenant(),
            XeroDocumentKind::Invoice,
            XeroVerb::Voided,
            &f.order_key,
        );
        publisher
            .publish_proto_retrying(subject, &f.fact_id.clone(), &f, "superseded fact")
            .await;
    }
    let id = stored
        .header(headers::MSG_ID)
        .unwrap_or_default()
        .to_owned();
    let repair_id = format!("{id}.repair.{}", short(&req.request_id));
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::REPAIR_OF, req.finding_id.as_str());
    publisher
        .publish_proto(stored.subject.clone(), &repair_id, &event, h)
        .await
        .map_err(|e| RepairError::Again(e.to_string()))?;
    Ok(corrections)
}

/// A short, stable token of a request id (for the message id).
fn short(id: &str) -> String {
    use sha2::Digest;
    ledgerline_xero_client::hex(&sha2::Sha256::digest(id.as_bytes()))[..16].to_owned()
}
