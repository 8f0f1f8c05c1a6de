//! A change in a locked period: the invoice credited and issued again after the lock date.

use crate::compose;
use crate::ledger::{self, CreditEntry};
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::plan::Plan;
use crate::worker::work::OrderWork;
use crate::worker::write::InvoicesBy;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{ReasonClass, XeroDocumentKind, XeroVerb};
use ledgerline_xero_client::model::send;
use ledgerline_xero_client::{Element, Need, Refusal};
use reqwest::Method;
use rust_decimal::Decimal;

impl TenantWorker {
    /// `WRITER_LOCKED_PERIOD=credit-and-reissue`: an order that changed while its invoice lies in
    /// a locked period gets a credit note for that invoice (its lines as Xero holds them, dated
    /// after the lock date, allocated to it) and a new invoice `<number>-R<n>` dated after the
    /// lock date. Deterministic numbers make every step safe to repeat: an existing credit note
    /// or invoice of that number is adopted, a credit note already allocated is not allocated
    /// again.
    pub(crate) async fn reissue_locked(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        org: &OrgSettings,
    ) {
        let today = chrono::Utc::now().with_timezone(&org.timezone).date_naive();
        for g in groups.iter_mut() {
            let Plan::Reissue { credit_only } = g.plan else {
                continue;
            };
            if !g.live() {
                continue;
            }
            let idx = g.order_msg();
            let lock = org.lock_date.unwrap_or(today);
            let date = today.max(lock.succ_opt().unwrap_or(lock));
            let e = g.led.entry.clone();
            if e.is_draft() {
                let error = format!(
                    "invoice {} changed but is a DRAFT dated in a locked period (lock date {lock}); re-date or delete it in Xero, then replay",
                    e.invoice_number
                );
                self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                    .await;
                continue;
            }
            // 1. The old invoice as Xero holds it.
            let old = match self
                .client
                .call(
                    Method::GET,
                    &format!("/Invoices/{}", e.invoice_id),
                    &[],
                    None,
                )
                .await
            {
                Ok(v) => v.invoices.into_iter().next().unwrap_or_default(),
                Err(err) => {
                    self.call_failed(g, msgs, &err).await;
                    continue;
                }
            };
            // 2. A credit note with its lines, dated after the lock date.
            let cn_number = format!("{}-C", e.invoice_number);
            let lines: Result<Vec<compose::XLine>, ledgerline_xero_client::AmountError> = old
                .line_items
                .iter()
                .map(|l| {
                    Ok(compose::XLine {
                        description: l.description.clone(),
                        quantity: Decimal::ONE,
                        unit_amount: l.line_amount.need("LineAmount")?,
                        discount_amount: None,
                        account_code: l.account_code.clone(),
                        tax_type: l.tax_type.clone(),
                        tracking: l
                            .tracking
                            .iter()
                            .map(|t| compose::XTracking {
                                name: t.name.clone(),
                                option: t.option.clone(),
                            })
                            .collect(),
                    })
                })
                .collect();
            let lines = match lines {
                Ok(l) => l,
                Err(e) => {
                    g.transient(e.to_string());
                    continue;
                }
            };
            let credit = compose::XDocument {
                kind: "ACCRECCREDIT".into(),
                invoice_id: None,
                contact: compose::XContactRef {
                    contact_id: e.contact_id.clone(),
                },
                invoice_number: None,
                credit_note_number: Some(cn_number.clone()),
                reference: if credit_only {
                    format!(
                        "Cancels {} (order cancelled after the lock date {lock})",
                        e.invoice_number
                    )
                } else {
                    format!(
                        "Cancels {} (changed after the lock date {lock})",
                        e.invoice_number
                    )
                },
                date: date.to_string(),
                due_date: None,
                line_amount_types: old.line_amount_types.clone(),
                status: "AUTHORISED".into(),
                line_items: lines,
                currency_code: Some(old.currency_code.clone()).filter(|c| !c.is_empty()),
            };
            let unitdp4 = credit
                .line_items
                .iter()
                .any(|l| l.unit_amount.normalize().scale() > 2);
            let cn = match self
                .batch_call(
                    Method::PUT,
                    "/CreditNotes",
                    "CreditNotes",
                    &[&credit],
                    unitdp4,
                )
                .await
            {
                Ok(r) => r.credit_notes.into_iter().next().unwrap_or_default(),
                Err(err) => {
                    self.call_failed(g, msgs, &err).await;
                    continue;
                }
            };
            let cn = if cn.ok() {
                let f = self.fact(
                    g,
                    XeroDocumentKind::CreditNote,
                    XeroVerb::Created,
                    &cn.credit_note_id,
                    &cn_number,
                    cn.total,
                    None,
                    "AUTHORISED",
                );
                g.facts.push(f);
                cn
            } else if matches!(cn.refusal(), Some(Refusal::DuplicateDocumentNumber(_))) {
                // Ours from an attempt that did not finish.
                match self
                    .client
                    .call(
                        Method::GET,
                        "/CreditNotes",
                        &[("where", format!("CreditNoteNumber==\"{cn_number}\""))],
                        None,
                    )
                    .await
                {
                    Ok(v) => v.credit_notes.into_iter().next().unwrap_or_default(),
                    Err(err) => {
                        g.transient(err.to_string());
                        continue;
                    }
                }
            } else {
                let error = format!(
                    "invoice {} lies in a locked period (lock date {lock}); its credit note {cn_number} was refused: {}",
                    e.invoice_number,
                    cn.errors().join("; ")
                );
                self.review(g, &msgs[idx], ReasonClass::XeroValidation, &error, vec![])
                    .await;
                continue;
            };
            let cn_id = cn.credit_note_id.clone();
            if cn_id.is_empty() {
                g.transient(format!("credit note {cn_number} not found"));
                continue;
            }
            // 3. Allocated to the old invoice, which then owes nothing.
            let (cn_total, remaining, old_due) = match (
                cn.total.need("Total"),
                cn.remaining_credit.need("RemainingCredit"),
                old.amount_due.need("AmountDue"),
            ) {
                (Ok(t), Ok(r), Ok(d)) => (t, r, d),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    g.transient(e.to_string());
                    continue;
                }
            };
            let alloc = remaining.min(old_due);
            if alloc > Decimal::ZERO {
                let body = send::envelope(
                    "Allocations",
                    &[send::Allocation {
                        invoice: send::InvoiceRef {
                            invoice_id: e.invoice_id.clone(),
                        },
                        amount: alloc,
                        date: date.to_string(),
                    }],
                );
                let el = match self
                    .client
                    .call(
                        Method::PUT,
                        &format!("/CreditNotes/{cn_id}/Allocations"),
                        &[("summarizeErrors", "false".into())],
                        Some(body),
                    )
                    .await
                {
                    Ok(v) => v.allocations.into_iter().next().unwrap_or_default(),
                    Err(err) => {
                        self.call_failed(g, msgs, &err).await;
                        continue;
                    }
                };
                if !el.ok() {
                    let error = format!(
                        "credit note {cn_number} could not be allocated to invoice {}: {}",
                        e.invoice_number,
                        el.errors().join("; ")
                    );
                    self.review(g, &msgs[idx], ReasonClass::XeroValidation, &error, vec![])
                        .await;
                    continue;
                }
                let f = self.fact(
                    g,
                    XeroDocumentKind::Allocation,
                    XeroVerb::Created,
                    &el.allocation_id,
                    &cn_number,
                    Some(alloc),
                    None,
                    "AUTHORISED",
                );
                g.facts.push(f);
            }
            if credit_only {
                // Cancelled: the credit note stands in for the void Xero would refuse.
                let credit = CreditEntry {
                    credit_note_id: cn_id.clone(),
                    number: cn_number.clone(),
                    total: cn_total,
                    allocated: cn_total - remaining + alloc,
                    refunded: Decimal::ZERO,
                    done: true,
                    method: String::new(),
                };
                g.led.entry.credit_notes.insert("cancelled".into(), credit);
                g.led.entry.voided = true;
                tracing::info!(invoice = %e.invoice_number, credit = %cn_number, "Cancelled order's invoice in a locked period credited in full.");
                continue;
            }
            // 4. The new invoice, dated after the lock date.
            let Some(mut inv) = g.inv.clone() else {
                continue;
            };
            inv.number = format!(
                "{}-R{}",
                e.original_number(&e.invoice_number),
                e.superseded.len() + 1
            );
            inv.doc.invoice_number = Some(inv.number.clone());
            if inv.doc.date.as_str() < date.to_string().as_str() {
                inv.doc.date = date.to_string();
            }
            if inv
                .doc
                .due_date
                .as_ref()
                .is_some_and(|d| d.as_str() < inv.doc.date.as_str())
            {
                inv.doc.due_date = Some(inv.doc.date.clone());
            }
            let unitdp4 = inv.unitdp4;
            g.inv = Some(inv.clone());
            let superseded = ledger::Superseded {
                invoice_id: e.invoice_id.clone(),
                invoice_number: e.invoice_number.clone(),
                credit_note_id: cn_id.clone(),
                credit_note_number: cn_number.clone(),
                total: cn_total,
            };
            let el = match self
                .batch_call(Method::PUT, "/Invoices", "Invoices", &[&inv.doc], unitdp4)
                .await
            {
                Ok(r) => r.invoices.into_iter().next().unwrap_or_default(),
                Err(err) => {
                    self.call_failed(g, msgs, &err).await;
                    continue;
                }
            };
            let (el, verb) = if el.ok() {
                (el, XeroVerb::Created)
            } else if matches!(el.refusal(), Some(Refusal::DuplicateDocumentNumber(_))) {
                match self
                    .read_invoices(InvoicesBy::Number, &[inv.number.clone()])
                    .await
                {
                    Ok(v) => (
                        v.into_iter()
                            .find(|i| i.status != "DELETED")
                            .unwrap_or_default(),
                        XeroVerb::Adopted,
                    ),
                    Err(err) => {
                        g.transient(err.to_string());
                        continue;
                    }
                }
            } else {
                let error = format!(
                    "invoice {} was credited by {cn_number} (locked period) but its replacement {} was refused: {}",
                    e.invoice_number,
                    inv.number,
                    el.errors().join("; ")
                );
                self.review(g, &msgs[idx], ReasonClass::XeroValidation, &error, vec![])
                    .await;
                continue;
            };
            if el.invoice_id.is_empty() {
                g.transient(format!("invoice {} not found", inv.number));
                continue;
            }
            g.led.entry.superseded.push(superseded);
            self.invoice_written(g, &el, verb);
            tracing::info!(old = %e.invoice_number, new = %inv.number, credit = %cn_number, "Changed invoice in a locked period credited and re-issued.");
        }
    }
}
