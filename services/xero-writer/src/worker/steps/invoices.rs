//! Invoices: built from orders, created, adopted when their number exists, and updated; one
//! batched write per request.

use crate::compose;
use crate::config::DocStatus;
use crate::ledger::PaymentEntry;
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::plan::{Plan, Policy, Write, revise};
use crate::worker::work::OrderWork;
use crate::worker::write::InvoicesBy;
use crate::worker::write::{Chunks, OnFail, Request, Sent};
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{OrderStatus, ReasonClass, Suggestion, XeroDocumentKind, XeroVerb};
use ledgerline_mapping::Effective;
use ledgerline_xero_client::model;
use ledgerline_xero_client::{Element, Refusal};
use reqwest::Method;

impl TenantWorker {
    pub(crate) async fn build_invoices(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        self.contact_terms(groups, org).await;
        let cfg = &self.shared.config;
        let policy = Policy::of(cfg);
        for g in groups.iter_mut() {
            if !g.live() || !matches!(g.plan, Plan::Converge(_)) {
                continue;
            }
            let Some((ev, idx)) = g.order.clone() else {
                continue;
            };
            let order = ev.order.clone().unwrap_or_default();
            if order.status == OrderStatus::Cancelled as i32 {
                continue;
            }
            let contact = g.led.entry.contact_id.clone();
            let opts = compose::DocOptions {
                status: cfg.invoice_status,
                contact_terms: self
                    .terms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&contact)
                    .and_then(|(t, _)| *t),
                default_due_days: cfg.default_due_days,
                unknown_tracking: cfg.unknown_tracking,
            };
            match compose::invoice_with(&order, &contact, &mapping.mapping, org, &opts) {
                Ok(mut doc) => {
                    renumber(&mut doc, &g.led.entry);
                    if !doc.dropped_tracking.is_empty() {
                        metrics::counter!(m::TRACKING_DROPPED, "tenant" => self.tenant().to_owned()).increment(1);
                        tracing::info!(order = %order.number, dropped = ?doc.dropped_tracking, "Tracking values the organisation lacks were left off.");
                    }
                    g.plan = revise(&g.led.entry, &order, &doc, org, &policy);
                    match &g.plan {
                        Plan::Review(error) => {
                            let error = error.clone();
                            self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                                .await;
                        }
                        Plan::Converge(Write::Keep) => {}
                        _ => g.inv = Some(doc),
                    }
                }
                Err(p) => {
                    self.problem(g, &msgs[idx], p).await;
                }
            }
        }
    }

    pub(crate) fn suggestions_for(
        &self,
        error: &str,
        g: &OrderWork,
        org: &OrgSettings,
    ) -> Vec<Suggestion> {
        let lines = g
            .order
            .as_ref()
            .and_then(|(e, _)| e.order.as_ref())
            .map(|o| o.lines.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        let refusal = Refusal::classify(error);
        if let Refusal::UnknownAccountCode { code, .. } = &refusal {
            let kind = lines
                .first()
                .map(|l| ledgerline_contract::v1::LineKind::try_from(l.kind).unwrap_or_default())
                .unwrap_or_default();
            out = org.suggest_accounts(kind, code.as_deref().unwrap_or_default());
        } else if let Refusal::UnknownTaxType { tax_type, .. } = &refusal {
            let rate = lines
                .first()
                .and_then(|l| compose::dec(&l.tax_rate).ok())
                .unwrap_or_default();
            out = org.suggest_tax_types(rate, tax_type.as_deref().unwrap_or_default());
        }
        out
    }

    /// Creates (`Write::Create`, `PUT`) or updates (`Write::Update`, `POST`, keeping a draft a
    /// draft) the invoices whose plan says so, in batches. A taken number on create is
    /// adopted; an archived contact is made active again and the invoice written again; any
    /// other refusal goes to review (POLICY for an update Xero refuses for payments, status or
    /// a lock date; XERO_VALIDATION otherwise, with suggestions).
    pub(crate) async fn write_invoices(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        org: &OrgSettings,
        write: Write,
    ) {
        let update = write == Write::Update;
        let todo: Vec<usize> = (0..groups.len())
            .filter(|&i| {
                groups[i].live()
                    && groups[i].inv.is_some()
                    && groups[i].plan == Plan::Converge(write)
            })
            .collect();
        let (method, verb) = if update {
            (Method::POST, XeroVerb::Updated)
        } else {
            (Method::PUT, XeroVerb::Created)
        };
        let mut adopt: Vec<usize> = Vec::new();
        let mut archived: Vec<usize> = Vec::new();
        for unitdp4 in [false, true] {
            let items: Vec<(usize, (), compose::XDocument)> = todo
                .iter()
                .filter_map(|&i| {
                    let inv = groups[i].inv.as_ref().filter(|d| d.unitdp4 == unitdp4)?;
                    let mut d = inv.doc.clone();
                    if update {
                        d.invoice_id = Some(groups[i].led.entry.invoice_id.clone());
                        if self.shared.config.invoice_status == DocStatus::Draft {
                            // A draft stays a draft, and one a person approved stays approved.
                            d.status.clear();
                        }
                    }
                    Some((i, (), d))
                })
                .collect();
            let req = Request::new(&method, "/Invoices", "Invoices").unitdp4(unitdp4);
            let mut chunks = Chunks::new(items);
            while let Some(written) = self
                .write_chunk(groups, msgs, req, OnFail::Review, &mut chunks, |r| {
                    r.invoices
                })
                .await
            {
                for Sent {
                    group: i,
                    answer: el,
                    ..
                } in written
                {
                    let g = &mut groups[i];
                    let Some(refusal) = el.refusal() else {
                        self.invoice_written(g, &el, verb);
                        continue;
                    };
                    match refusal {
                        Refusal::DuplicateDocumentNumber(_) if !update => adopt.push(i),
                        Refusal::ArchivedContact(_) => archived.push(i),
                        refusal => {
                            let errors = el.errors().join("; ");
                            // "lock date": the cached lock date was older than Xero's.
                            let reason = match refusal {
                                Refusal::HasPaymentsOrCredit(_)
                                | Refusal::InvalidStatus(_)
                                | Refusal::PeriodLocked(_)
                                    if update =>
                                {
                                    ReasonClass::Policy
                                }
                                _ => ReasonClass::XeroValidation,
                            };
                            let idx = g.order_msg();
                            let sugg = self.suggestions_for(&errors, g, org);
                            self.review(g, &msgs[idx], reason, &errors, sugg).await;
                        }
                    }
                }
            }
        }
        if !adopt.is_empty() {
            self.adopt_invoices(groups, &adopt).await;
        }
        if !archived.is_empty() {
            let restored = self.restore_contacts(groups, msgs, &archived).await;
            self.rewrite_after_restore(groups, msgs, &restored, update)
                .await;
        }
    }

    pub(crate) fn invoice_written(&self, g: &mut OrderWork, el: &model::Invoice, verb: XeroVerb) {
        let (Some(total), Some(due), Some(tax)) = (
            g.amount(el.total, "Total"),
            g.amount(el.amount_due, "AmountDue"),
            g.amount(el.total_tax, "TotalTax"),
        ) else {
            return;
        };
        let doc = g.inv.as_ref().expect("doc");
        let rounding = doc.rounding;
        let id = el.invoice_id.clone();
        let e = &mut g.led.entry;
        e.invoice_id = id.clone();
        e.invoice_number = doc.number.clone();
        e.content_hash = doc.hash.clone();
        e.date = doc.doc.date.clone();
        e.total = total;
        if !el.status.is_empty() {
            e.status = el.status.clone();
        }
        g.written = Some(verb);
        let status = el.status.clone();
        let number = doc.number.clone();
        let mut f = self.fact(
            g,
            XeroDocumentKind::Invoice,
            verb,
            &id,
            &number,
            Some(total),
            Some(due),
            &status,
        );
        f.tax = Some(self.money(g, tax));
        if !rounding.is_zero() {
            f.rounding = Some(self.money(g, rounding));
        }
        f.currency_rate = el.currency_rate.map(|r| r.to_string()).unwrap_or_default();
        if let Some((from, rate)) = g.fx() {
            (f.fx_from, f.fx_rate) = (from, rate);
        }
        g.facts.push(f);
        metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "invoice", "verb" => format!("{verb:?}")).increment(1);
    }

    /// "Invoice # must be unique": it exists (ours after an unconfirmed attempt, or an earlier
    /// integration's). Look it up by number and take it over.
    pub(crate) async fn adopt_invoices(&self, groups: &mut [OrderWork], idx: &[usize]) {
        for chunk in idx.chunks(40) {
            let numbers: Vec<String> = chunk
                .iter()
                .map(|&i| groups[i].inv.as_ref().expect("doc").number.clone())
                .collect();
            let Some(list) = self
                .read_invoices_of(groups, chunk, InvoicesBy::Number, &numbers)
                .await
            else {
                continue;
            };
            for &i in chunk {
                let g = &mut groups[i];
                let number = g.inv.as_ref().expect("doc").number.clone();
                let found = list.iter().find(|v| {
                    v.invoice_number.eq_ignore_ascii_case(&number) && v.status != "DELETED"
                });
                let Some(found) = found else {
                    g.transient(format!("invoice {number} said to exist but not found"));
                    continue;
                };
                self.invoice_written(g, found, XeroVerb::Adopted);
                // Payments already on it that carry our references are ours.
                let order = g
                    .order
                    .as_ref()
                    .and_then(|(e, _)| e.order.clone())
                    .unwrap_or_default();
                for p in &found.payments {
                    if let Some(src) = order
                        .payments
                        .iter()
                        .find(|sp| compose::payment_reference(&number, &sp.id) == p.reference)
                        && let Some(amount) = g.amount(p.amount, "Amount")
                    {
                        g.led.entry.payments.insert(
                            src.id.clone(),
                            PaymentEntry {
                                payment_id: p.payment_id.clone(),
                                amount,
                            },
                        );
                    }
                }
                // A foreign invoice whose content differs is brought in line when unpaid.
                let (paid, total) = (
                    g.amount(found.amount_paid, "AmountPaid"),
                    g.amount(found.total, "Total"),
                );
                if found.status == "AUTHORISED"
                    && paid.is_some_and(|p| p.is_zero())
                    && total.is_some_and(|t| t != g.inv.as_ref().expect("doc").total)
                {
                    g.plan = Plan::Converge(Write::Update);
                }
            }
        }
    }
}

/// The number the ledger knows wins over the mapping's (a reissued invoice keeps its
/// `-R<k>`); an order whose invoice was superseded (reissued after a lock date, or voided or
/// deleted in Xero and repaired) is invoiced as the next `<number>-R<k>`, since Xero keeps
/// numbers unique and would otherwise hand back the old invoice.
fn renumber(doc: &mut compose::InvoiceDoc, e: &crate::ledger::Entry) {
    let number = if !e.invoice_id.is_empty() && !e.invoice_number.is_empty() {
        e.invoice_number.clone()
    } else if e.invoice_id.is_empty() && !e.superseded.is_empty() {
        format!("{}-R{}", e.original_number(&doc.number), e.superseded.len())
    } else {
        return;
    };
    doc.doc.invoice_number = Some(number.clone());
    doc.number = number;
}
