//! Cancelled orders: their payments removed when the policy says so, their invoices voided
//! (a draft deleted).

use crate::ledger::PaymentEntry;
use crate::metrics_names as m;
use crate::worker::TenantWorker;
use crate::worker::plan::Plan;
use crate::worker::work::OrderWork;
use crate::worker::write::InvoicesBy;
use crate::worker::write::{Chunks, OnFail, Request, Sent};
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{ReasonClass, XeroDocumentKind, XeroVerb};
use ledgerline_xero_client::model::send;
use ledgerline_xero_client::{Element, Refusal, XeroError};
use reqwest::Method;
use rust_decimal::Decimal;

impl TenantWorker {
    /// Deletes the payments of cancelled orders whose invoices are to be voided
    /// (`WRITER_VOID_REMOVES_PAYMENTS`): one `POST /Payments/{PaymentID}` each, as Xero offers no
    /// batch for it. A payment already deleted counts as done.
    pub(crate) async fn remove_payments(&self, groups: &mut [OrderWork], msgs: &[Message]) {
        for g in groups.iter_mut() {
            if !g.live()
                || g.plan
                    != (Plan::Void {
                        remove_payments: true,
                    })
            {
                continue;
            }
            let payments: Vec<(String, PaymentEntry)> = g
                .led
                .entry
                .payments
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (src, p) in payments {
                let resp = self
                    .client
                    .call(
                        Method::POST,
                        &format!("/Payments/{}", p.payment_id),
                        &[("summarizeErrors", "false".into())],
                        Some(br#"{"Payments":[{"Status":"DELETED"}]}"#.to_vec()),
                    )
                    .await;
                let el = match resp {
                    Ok(v) => Some(v.payments.into_iter().next().unwrap_or_default()),
                    Err(XeroError::NotFound) => None,
                    Err(e) => {
                        self.call_failed(g, msgs, &e).await;
                        break;
                    }
                };
                let refusal = el.as_ref().and_then(Element::refusal);
                let gone = matches!(refusal, Some(Refusal::AlreadyDeleted(_)));
                if el.is_none() || (refusal.is_some() && !gone) {
                    let idx = g.order_msg();
                    let why = match &refusal {
                        None => "Xero does not know it".to_owned(),
                        Some(r) => r.message().to_owned(),
                    };
                    let error = format!(
                        "order was cancelled; payment {} ({}) on invoice {} could not be deleted before voiding: {why}",
                        p.payment_id, src, g.led.entry.invoice_number
                    );
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                    break;
                }
                g.led.entry.payments.remove(&src);
                g.led.entry.removed_payments.insert(src.clone(), p.clone());
                let number = g.led.entry.invoice_number.clone();
                let f = self.fact(
                    g,
                    XeroDocumentKind::Payment,
                    XeroVerb::Deleted,
                    &p.payment_id,
                    &number,
                    Some(p.amount),
                    None,
                    "DELETED",
                );
                g.facts.push(f);
                metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "payment", "verb" => "Deleted").increment(1);
            }
        }
        // Recorded before the void, so a failed void does not forget what was removed.
        self.save(groups).await;
    }

    /// Voids the invoices of cancelled orders; a draft cannot be voided in Xero, it is deleted.
    /// When Xero refuses the status change (the ledger's status is stale: a person approved the
    /// draft, or voided it already), the invoice is read once and the right verb tried again.
    pub(crate) async fn void_invoices(&self, groups: &mut [OrderWork], msgs: &[Message]) {
        self.remove_payments(groups, msgs).await;
        let mut todo: Vec<usize> = (0..groups.len())
            .filter(|&i| groups[i].live() && groups[i].plan.voids())
            .collect();
        for attempt in 0..2 {
            let mut unsure = Vec::new();
            let items: Vec<(usize, &'static str, send::StatusChange)> = todo
                .iter()
                .map(|&i| {
                    let status = if groups[i].led.entry.is_draft() {
                        "DELETED"
                    } else {
                        "VOIDED"
                    };
                    let change = send::StatusChange {
                        invoice_id: groups[i].led.entry.invoice_id.clone(),
                        status: status.to_owned(),
                    };
                    (i, status, change)
                })
                .collect();
            let req = Request::new(&Method::POST, "/Invoices", "Invoices");
            let mut chunks = Chunks::new(items);
            while let Some(written) = self
                .write_chunk(groups, msgs, req, OnFail::Review, &mut chunks, |r| {
                    r.invoices
                })
                .await
            {
                for Sent {
                    group: i,
                    key: status,
                    answer: el,
                    ..
                } in written
                {
                    let g = &mut groups[i];
                    let errors = el.errors().join("; ");
                    let refusal = el.refusal();
                    if refusal.is_none() {
                        if let Some(total) = g.amount(el.total, "Total") {
                            self.invoice_gone(g, status, total);
                        }
                    } else if attempt == 0 && matches!(refusal, Some(Refusal::InvalidStatus(_))) {
                        unsure.push(i);
                    } else {
                        let idx = g.order_msg();
                        self.review(g, &msgs[idx], ReasonClass::Policy, &errors, vec![])
                            .await;
                    }
                }
            }
            if unsure.is_empty() {
                break;
            }
            todo = Vec::new();
            for chunk in unsure.chunks(40) {
                let ids: Vec<String> = chunk
                    .iter()
                    .map(|&i| groups[i].led.entry.invoice_id.clone())
                    .collect();
                let Some(list) = self
                    .read_invoices_of(groups, chunk, InvoicesBy::Id, &ids)
                    .await
                else {
                    continue;
                };
                for &i in chunk {
                    let g = &mut groups[i];
                    let found = list
                        .iter()
                        .find(|x| x.invoice_id == g.led.entry.invoice_id)
                        .cloned()
                        .unwrap_or_default();
                    let status = found.status.clone();
                    match status.as_str() {
                        "VOIDED" | "DELETED" => {
                            let st = if status == "VOIDED" {
                                "VOIDED"
                            } else {
                                "DELETED"
                            };
                            if let Some(total) = g.amount(found.total, "Total") {
                                self.invoice_gone(g, st, total);
                            }
                        }
                        "DRAFT" | "SUBMITTED" | "AUTHORISED" => {
                            g.led.entry.status = status;
                            todo.push(i);
                        }
                        other => {
                            let idx = g.order_msg();
                            let error = format!(
                                "order was cancelled but invoice {} is {other:?} in Xero and cannot be voided; remove its payments or credit notes in Xero, then replay",
                                g.led.entry.invoice_number
                            );
                            self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                                .await;
                        }
                    }
                }
            }
        }
    }

    /// Records a voided (or, for a draft, deleted) invoice and its fact.
    pub(crate) fn invoice_gone(&self, g: &mut OrderWork, status: &str, total: Decimal) {
        g.led.entry.voided = true;
        g.led.entry.status = status.to_owned();
        let id = g.led.entry.invoice_id.clone();
        let number = g.led.entry.invoice_number.clone();
        let verb = if status == "DELETED" {
            XeroVerb::Deleted
        } else {
            XeroVerb::Voided
        };
        let f = self.fact(
            g,
            XeroDocumentKind::Invoice,
            verb,
            &id,
            &number,
            Some(total),
            Some(Decimal::ZERO),
            status,
        );
        g.facts.push(f);
        metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "invoice", "verb" => format!("{verb:?}")).increment(1);
    }
}
