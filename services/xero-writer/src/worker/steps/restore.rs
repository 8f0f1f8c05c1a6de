//! Archived contacts made active again, and the documents refused for them written again.

use crate::compose;
use crate::config::{ArchivedContact, DocStatus};
use crate::metrics_names as m;
use crate::worker::TenantWorker;
use crate::worker::work::OrderWork;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{ReasonClass, XeroDocumentKind, XeroVerb};
use ledgerline_xero_client::Element;
use ledgerline_xero_client::model::send;
use reqwest::Method;

impl TenantWorker {
    /// Orders whose contact Xero reports archived: made active again (the default policy), or
    /// sent to review. Returns the groups whose contact is active again.
    pub(crate) async fn restore_contacts(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        idx: &[usize],
    ) -> Vec<usize> {
        if self.shared.config.archived_contact == ArchivedContact::Review {
            for &i in idx {
                let g = &mut groups[i];
                let number = g
                    .order
                    .as_ref()
                    .and_then(|(e, _)| e.order.as_ref())
                    .map(|o| o.number.clone())
                    .or_else(|| g.refunds.first().map(|(r, _)| r.order_number.clone()))
                    .unwrap_or_default();
                let error = format!(
                    "order {number}: its contact {} is archived in Xero (WRITER_ARCHIVED_CONTACT=review); make the contact active in Xero, then replay this event",
                    g.led.entry.contact_id
                );
                let m = g.order_msg();
                self.review(g, &msgs[m], ReasonClass::Policy, &error, vec![])
                    .await;
            }
            return vec![];
        }
        let mut ids: Vec<String> = Vec::new();
        for &i in idx {
            let id = &groups[i].led.entry.contact_id;
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let mut restored = Vec::new();
        for chunk in ids.chunks(self.shared.config.batch_size) {
            let body: Vec<send::ContactStatus> = chunk
                .iter()
                .map(|id| send::ContactStatus {
                    contact_id: id.clone(),
                    contact_status: "ACTIVE".into(),
                })
                .collect();
            let els = match self
                .batch_call(Method::POST, "/Contacts", "Contacts", &body, false)
                .await
            {
                Ok(r) => r.contacts,
                Err(e) => {
                    for &i in idx {
                        if chunk.contains(&groups[i].led.entry.contact_id) {
                            self.call_failed(&mut groups[i], msgs, &e).await;
                        }
                    }
                    continue;
                }
            };
            for (n, id) in chunk.iter().enumerate() {
                let el = els.get(n).cloned().unwrap_or_default();
                let ok = el.ok() && el.contact_status == "ACTIVE";
                let errors = el.errors().join("; ");
                let mut announced = false;
                for &i in idx {
                    let g = &mut groups[i];
                    if &g.led.entry.contact_id != id || !g.live() {
                        continue;
                    }
                    if ok {
                        restored.push(i);
                        if !announced {
                            announced = true;
                            tracing::info!(contact = %id, "Archived contact made active again.");
                            let f = self.fact(
                                g,
                                XeroDocumentKind::Contact,
                                XeroVerb::Updated,
                                id,
                                &el.contact_number,
                                None,
                                None,
                                "ACTIVE",
                            );
                            g.facts.push(f);
                            metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "contact", "verb" => "Restored").increment(1);
                        }
                    } else {
                        let error = format!(
                            "contact {id} is archived in Xero and could not be made active again: {errors}"
                        );
                        let m = g.order_msg();
                        self.review(g, &msgs[m], ReasonClass::XeroValidation, &error, vec![])
                            .await;
                    }
                }
            }
        }
        restored
    }

    /// Writes again the invoices refused for an archived contact that is now active. The first
    /// request's refusal is stored under its Idempotency-Key, so the retry differs: creates go as
    /// `POST /Invoices` (update or create by InvoiceNumber), updates to `POST /Invoices/{id}`.
    pub(crate) async fn rewrite_after_restore(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        idx: &[usize],
        update: bool,
    ) {
        let mut calls: Vec<(Vec<usize>, String, bool)> = Vec::new();
        if update {
            for &i in idx {
                let unitdp4 = groups[i].inv.as_ref().is_some_and(|d| d.unitdp4);
                let path = format!("/Invoices/{}", groups[i].led.entry.invoice_id);
                calls.push((vec![i], path, unitdp4));
            }
        } else {
            for unitdp4 in [false, true] {
                let set: Vec<usize> = idx
                    .iter()
                    .copied()
                    .filter(|&i| groups[i].inv.as_ref().is_some_and(|d| d.unitdp4 == unitdp4))
                    .collect();
                for chunk in set.chunks(self.shared.config.batch_size) {
                    calls.push((chunk.to_vec(), "/Invoices".into(), unitdp4));
                }
            }
        }
        for (chunk, path, unitdp4) in calls {
            let docs: Vec<compose::XDocument> = chunk
                .iter()
                .map(|&i| {
                    let mut d = groups[i].inv.as_ref().expect("doc").doc.clone();
                    if update {
                        d.invoice_id = Some(groups[i].led.entry.invoice_id.clone());
                        if self.shared.config.invoice_status == DocStatus::Draft {
                            d.status.clear();
                        }
                    }
                    d
                })
                .collect();
            let els = match self
                .batch_call(Method::POST, &path, "Invoices", &docs, unitdp4)
                .await
            {
                Ok(r) => r.invoices,
                Err(e) => {
                    for &i in &chunk {
                        self.call_failed(&mut groups[i], msgs, &e).await;
                    }
                    continue;
                }
            };
            for (n, &i) in chunk.iter().enumerate() {
                let g = &mut groups[i];
                let el = els.get(n).cloned().unwrap_or_default();
                if el.ok() {
                    let verb = if update {
                        XeroVerb::Updated
                    } else {
                        XeroVerb::Created
                    };
                    self.invoice_written(g, &el, verb);
                } else {
                    let errors = el.errors().join("; ");
                    let m = g.order_msg();
                    self.review(g, &msgs[m], ReasonClass::XeroValidation, &errors, vec![])
                        .await;
                }
            }
        }
    }
}
