//! Payments: looked up after an uncertain outcome, room made by undoing credit allocations,
//! and recorded in full.

use crate::compose;
use crate::ledger::{self, CreditEntry, PaymentEntry};
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::settle::unapplied;
use crate::worker::steps::draft_wait;
use crate::worker::work::OrderWork;
use crate::worker::write::{Chunks, InvoicesBy, OnFail, Request, Sent};
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{
    Order, Payment, ReasonClass, Suggestion, XeroDocumentKind, XeroVerb,
};
use ledgerline_mapping::Effective;
use ledgerline_xero_client::{Element, Need, Refusal, XeroError};
use reqwest::Method;
use rust_decimal::Decimal;

impl TenantWorker {
    pub(crate) async fn payments(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        // Payments sent before without a confirmed answer: find them before paying again.
        let unsure: Vec<usize> = (0..groups.len())
            .filter(|&i| {
                groups[i].live()
                    && !groups[i].led.entry.payments_in_flight.is_empty()
                    && !groups[i].led.entry.invoice_id.is_empty()
            })
            .collect();
        for chunk in unsure.chunks(40) {
            let ids: Vec<String> = chunk
                .iter()
                .map(|&i| groups[i].led.entry.invoice_id.clone())
                .collect();
            let Some(v) = self
                .read_invoices_of(groups, chunk, InvoicesBy::Id, &ids)
                .await
            else {
                continue;
            };
            for &i in chunk {
                let g = &mut groups[i];
                let inv = v
                    .iter()
                    .find(|x| x.invoice_id == g.led.entry.invoice_id)
                    .cloned()
                    .unwrap_or_default();
                for src in std::mem::take(&mut g.led.entry.payments_in_flight) {
                    let reference = g.led.entry.payment_reference(&src);
                    let found = inv.payments.iter().find(|p| p.reference == reference);
                    if let Some(p) = found {
                        let Some(amount) = g.amount(p.amount, "Amount") else {
                            // Looked up again next time.
                            g.led.entry.payments_in_flight.push(src);
                            continue;
                        };
                        g.led.entry.payments.insert(
                            src,
                            PaymentEntry {
                                payment_id: p.payment_id.clone(),
                                amount,
                            },
                        );
                    }
                }
            }
        }
        self.make_room_for_payments(groups, msgs).await;
        // What to pay: each payment in full, or a review entry saying why not.
        let mut todo: Vec<(usize, String, compose::XPayment)> = Vec::new();
        for (i, g) in groups.iter_mut().enumerate() {
            let Some(order) = g.payable() else {
                continue;
            };
            let mut due = g.led.entry.amount_due();
            let pending = unrecorded(&order, &g.led.entry);
            if let Some((p, _)) = pending.first()
                && g.written.is_some()
                && g.led.entry.is_draft()
            {
                // Just written as a draft: Xero would refuse the payment, so no call is spent.
                let error = draft_wait(
                    &order.number,
                    &format!("payment {}", p.id),
                    &g.led.entry.invoice_number,
                );
                let idx = g.order_msg();
                self.review_unapplied(
                    g,
                    "payment",
                    &msgs[idx],
                    ReasonClass::Policy,
                    &error,
                    vec![],
                    None,
                )
                .await;
                continue;
            }
            for (p, amount) in &pending {
                let amount = *amount;
                if amount.is_zero() {
                    // Nothing received, nothing to record.
                    continue;
                }
                if amount < Decimal::ZERO || amount > due {
                    let idx = g.order_msg();
                    let error = format!(
                        "payment {} of {amount} for order {} cannot be recorded: invoice {} owes {due} (total {}, paid {}, credited {}); a person decides (a payment or allocation made in Xero, or an order total changed after payment), then replays",
                        p.id,
                        order.number,
                        g.led.entry.invoice_number,
                        g.led.entry.total,
                        g.led.entry.paid(),
                        g.led.entry.credited()
                    );
                    self.review_unapplied(
                        g,
                        "payment",
                        &msgs[idx],
                        ReasonClass::Policy,
                        &error,
                        vec![],
                        None,
                    )
                    .await;
                    break;
                }
                due -= amount;
                let account = mapping.mapping.payment_account(&p.method).to_owned();
                if !org.payment_account(&account) {
                    let idx = g.order_msg();
                    let sugg: Vec<Suggestion> = org
                        .accounts
                        .iter()
                        .filter(|a| a.active && a.payments)
                        .map(|a| Suggestion {
                            field: "Account.Code".into(),
                            current_value: account.clone(),
                            suggested_value: a.code.clone(),
                            score: if a.kind == "BANK" { 0.8 } else { 0.6 },
                            reason: format!("\"{}\" accepts payments", a.name),
                            rule: String::new(),
                        })
                        .collect();
                    self.review_unapplied(
                        g,
                        "payment",
                        &msgs[idx],
                        ReasonClass::Mapping,
                        &format!(
                            "payment account {account:?} for method {:?} cannot receive payments",
                            p.method
                        ),
                        sugg,
                        None,
                    )
                    .await;
                    break;
                }
                let mut date = compose::day_in(org.timezone, &p.received_at).unwrap_or_else(|| {
                    chrono::Utc::now().with_timezone(&org.timezone).date_naive()
                });
                if let Some(lock) = org.lock_date.filter(|l| date <= *l) {
                    // Money received in a closed period is recorded on its first open day.
                    date = lock.succ_opt().unwrap_or(lock);
                }
                let reference = g.led.entry.payment_reference(&p.id);
                g.led.entry.payments_in_flight.push(p.id.clone());
                todo.push((
                    i,
                    p.id.clone(),
                    compose::payment(&g.led.entry.invoice_id, &account, date, amount, &reference),
                ));
            }
        }
        todo.retain(|(i, _, _)| groups[*i].live());
        if todo.is_empty() {
            return;
        }
        // Record the intent first, so a crash between Xero and the ledger is looked up, not repeated.
        self.save(groups).await;
        todo.retain(|(i, _, _)| groups[*i].live());
        let req = Request::new(&Method::PUT, "/Payments", "Payments");
        let mut chunks = Chunks::new(todo);
        while let Some(written) = self
            .write_chunk(groups, msgs, req, OnFail::Review, &mut chunks, |r| {
                r.payments
            })
            .await
        {
            for Sent {
                group: i,
                key: src,
                body: p,
                answer: el,
            } in written
            {
                let g = &mut groups[i];
                g.led.entry.payments_in_flight.retain(|x| *x != src);
                if el.ok() {
                    let id = el.payment_id.clone();
                    g.led.entry.payments.insert(
                        src,
                        PaymentEntry {
                            payment_id: id.clone(),
                            amount: p.amount,
                        },
                    );
                    // Only the fact's "amount due" depends on it: unreadable leaves it out.
                    let due = el.invoice.as_ref().and_then(|i| i.amount_due);
                    if let Some(inv) = el.invoice.as_ref().filter(|i| !i.status.is_empty()) {
                        // A draft a person has approved since.
                        g.led.entry.status = inv.status.clone();
                    }
                    let number = g.led.entry.invoice_number.clone();
                    let mut f = self.fact(
                        g,
                        XeroDocumentKind::Payment,
                        XeroVerb::Recorded,
                        &id,
                        &number,
                        Some(p.amount),
                        due,
                        "AUTHORISED",
                    );
                    f.account_code = p.account.code.clone();
                    g.facts.push(f);
                    metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "payment", "verb" => "Recorded").increment(1);
                } else {
                    let errors = el.errors().join("; ");
                    if g.live() {
                        let idx = g.order_msg();
                        let draft = g.led.entry.is_draft()
                            && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)));
                        let (reason, error) = if draft {
                            let number = g
                                .order
                                .as_ref()
                                .and_then(|(e, _)| e.order.as_ref())
                                .map(|o| o.number.clone())
                                .unwrap_or_default();
                            (
                                ReasonClass::Policy,
                                draft_wait(
                                    &number,
                                    &format!("payment {src}"),
                                    &g.led.entry.invoice_number,
                                ),
                            )
                        } else {
                            (
                                ReasonClass::XeroValidation,
                                format!("payment {src}: {errors}"),
                            )
                        };
                        self.review_unapplied(
                            g,
                            "payment",
                            &msgs[idx],
                            reason,
                            &error,
                            vec![],
                            None,
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// Payments are money received, so each is recorded in full. Credit that an earlier, stale
    /// view allocated to the invoice (a refund written before the payment it followed: events
    /// older than the hold rule, or a ledger from before it) would leave too little due: those
    /// allocations are removed here, and the refunds phase then pays the freed credit back to
    /// the customer, which is what the store's state says happened.
    pub(crate) async fn make_room_for_payments(&self, groups: &mut [OrderWork], msgs: &[Message]) {
        for g in groups.iter_mut() {
            let Some(order) = g.payable() else {
                continue;
            };
            let incoming: Decimal = unrecorded(&order, &g.led.entry)
                .iter()
                .map(|(_, amount)| amount)
                .sum();
            let mut short = incoming - g.led.entry.amount_due();
            let allocated: Vec<(String, CreditEntry)> = g
                .led
                .entry
                .credit_notes
                .iter()
                .filter(|(_, c)| c.allocated > Decimal::ZERO)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            for (rid, c) in allocated {
                if short <= Decimal::ZERO || !g.live() {
                    break;
                }
                match self.undo_allocation(g, &rid, &c).await {
                    Ok(freed) => short -= freed,
                    Err(e) => {
                        if matches!(e, XeroError::Validation(_)) {
                            unapplied(self.tenant(), "allocation", "review");
                        }
                        self.call_failed(g, msgs, &e).await;
                    }
                }
            }
        }
    }

    /// Removes every allocation of credit note `c` to the order's invoice; returns the amount
    /// freed. The credit entry is left undone, so its credit is refunded instead.
    pub(crate) async fn undo_allocation(
        &self,
        g: &mut OrderWork,
        rid: &str,
        c: &CreditEntry,
    ) -> Result<Decimal, XeroError> {
        let (_, mine) = self
            .credit_note_allocations(&c.credit_note_id, &g.led.entry.invoice_id)
            .await?;
        let mut freed = Decimal::ZERO;
        for a in mine {
            let id = a.allocation_id.clone();
            let amount = a.amount.need("Amount")?;
            self.client
                .call(
                    Method::DELETE,
                    &format!("/CreditNotes/{}/Allocations/{id}", c.credit_note_id),
                    &[],
                    None,
                )
                .await?;
            freed += amount;
            tracing::info!(key = %g.key, credit_note = %c.number, invoice = %g.led.entry.invoice_number, %amount, "Credit allocation undone so the order's payment can be recorded in full; the credit is refunded instead.");
            metrics::counter!(m::ALLOCATIONS_UNDONE, "tenant" => self.tenant().to_owned())
                .increment(1);
            let f = self.fact(
                g,
                XeroDocumentKind::Allocation,
                XeroVerb::Deleted,
                &id,
                &c.number,
                Some(amount),
                None,
                "DELETED",
            );
            g.facts.push(f);
        }
        if let Some(ce) = g.led.entry.credit_notes.get_mut(rid) {
            // Xero's record decides: what is still allocated after the removals is none.
            ce.allocated = Decimal::ZERO;
            ce.done = false;
        }
        Ok(freed)
    }
}

/// The order's received payments the ledger has not recorded yet, with their amounts.
pub(crate) fn unrecorded(order: &Order, entry: &ledger::Entry) -> Vec<(Payment, Decimal)> {
    order
        .payments
        .iter()
        .filter(|p| p.received && !entry.payments.contains_key(&p.id))
        .map(|p| {
            let amount = p.amount.as_ref().and_then(|a| compose::dec(&a.amount).ok());
            (p.clone(), amount.unwrap_or_default())
        })
        .collect()
}
