//! Refunds: held until their payment is recorded, written as credit notes, allocated to the
//! invoice and paid back as cash; Xero's record decides after an uncertain outcome.

use crate::compose;
use crate::config::DocStatus;
use crate::ledger::CreditEntry;
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::work::OrderWork;
use crate::worker::write::{Chunks, OnFail, Request, Sent};
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{ReasonClass, XeroDocumentKind, XeroVerb};
use ledgerline_mapping::Effective;
use ledgerline_xero_client::model::{self, send};
use ledgerline_xero_client::{Element, Need, Refusal, XeroError};
use reqwest::Method;
use rust_decimal::Decimal;

impl TenantWorker {
    /// The refund rule: a refund is written against the order as it stood when the refund was
    /// made (`RefundEvent.order_version`) or later, never against an older view. Until the
    /// ledger (or this batch) has written that version, payments included, the refund is held:
    /// nak'd with a growing delay, no call spent. A refund that overtakes its order's payment
    /// (a redelivery, a crash) so waits for the payment instead of taking the invoice's balance
    /// as credit. If that order version is in review, the refund goes to review too; if it
    /// never comes, the refund is dead-lettered when its deliveries run out.
    pub(crate) async fn hold_refunds(&self, groups: &mut [OrderWork], msgs: &[Message]) {
        for g in groups.iter_mut() {
            if !g.live() || g.refunds.is_empty() || g.led.entry.before_start {
                continue;
            }
            let written = if g.plan.converges() {
                g.led.entry.version.max(g.version())
            } else {
                g.led.entry.version
            };
            let mut in_review = None;
            let mut ready = Vec::new();
            for (ev, idx) in std::mem::take(&mut g.refunds) {
                let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                let wanted = ev.order_version;
                if wanted <= written || g.led.entry.credit_notes.contains_key(&rid) {
                    ready.push((ev, idx));
                } else if g.led.entry.reviewed_version >= wanted {
                    in_review.get_or_insert((idx, rid.clone(), wanted, ev.order_number.clone()));
                    ready.push((ev, idx));
                } else {
                    tracing::info!(key = %g.key, refund = %rid, wanted, written, "Refund held until the order version it was made against is written.");
                    metrics::counter!(m::REFUNDS_HELD, "tenant" => self.tenant().to_owned())
                        .increment(1);
                    g.held.push((
                        idx,
                        format!(
                            "refund {rid} was made against order {} version {wanted}, but version {written} is the newest written to Xero; held so the payments it follows are recorded first",
                            ev.order_number
                        ),
                    ));
                }
            }
            g.refunds = ready;
            if let Some((idx, rid, wanted, number)) = in_review {
                let error = format!(
                    "refund {rid} was made against order {number} version {wanted}, which is in review; replay it once that version is written"
                );
                // One issue for every refund that waits on an order in review; the review
                // queue replays it once the order is written.
                let waits =
                    ledgerline_platform::dead_letter::fault("refund_awaits_order", "order", "");
                self.review_unapplied(
                    g,
                    "refund",
                    &msgs[idx],
                    ReasonClass::Policy,
                    &error,
                    vec![],
                    waits,
                )
                .await;
            }
        }
    }

    pub(crate) async fn refunds(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        self.hold_refunds(groups, msgs).await;
        // Credit notes to create.
        let mut todo: Vec<(usize, usize, compose::CreditDoc)> = Vec::new();
        for (gi, g) in groups.iter_mut().enumerate() {
            if !g.live() || g.refunds.is_empty() {
                continue;
            }
            if g.led.entry.invoice_id.is_empty() {
                if !g.led.entry.before_start {
                    g.transient("refund before its invoice exists");
                }
                continue;
            }
            for ri in 0..g.refunds.len() {
                let (ev, idx) = g.refunds[ri].clone();
                let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                if g.led.entry.credit_notes.contains_key(&rid) {
                    continue;
                }
                match compose::credit_note_with(
                    &ev,
                    &g.store,
                    &g.led.entry.contact_id,
                    &mapping.mapping,
                    org,
                    self.shared.config.invoice_status,
                ) {
                    Ok(d) => todo.push((gi, ri, d)),
                    Err(p) => {
                        self.review_unapplied(
                            g,
                            "refund",
                            &msgs[idx],
                            p.reason,
                            &p.error,
                            p.suggestions,
                            p.fault.map(|f| *f),
                        )
                        .await;
                        break;
                    }
                }
            }
        }
        todo.retain(|(gi, _, _)| groups[*gi].live());
        // A second pass writes again, as POST, the credit notes refused for an archived
        // contact that was made active again (the refused PUT's answer is stored under its key).
        let mut pass_todo = todo;
        // Credit notes created by this batch's own calls: no earlier allocation can exist.
        let mut fresh_credit: std::collections::HashSet<String> = Default::default();
        for pass in 0..2 {
            let mut archived: Vec<(usize, usize, compose::CreditDoc)> = Vec::new();
            for unitdp4 in [false, true] {
                let items: Vec<(usize, (usize, compose::CreditDoc), compose::XDocument)> =
                    pass_todo
                        .iter()
                        .filter(|(_, _, d)| d.unitdp4 == unitdp4)
                        .map(|(gi, ri, d)| (*gi, (*ri, d.clone()), d.doc.clone()))
                        .collect();
                let req = Request {
                    method: if pass == 0 {
                        &Method::PUT
                    } else {
                        &Method::POST
                    },
                    path: "/CreditNotes",
                    collection: "CreditNotes",
                    unitdp4,
                };
                let mut chunks = Chunks::new(items);
                while let Some(written) = self
                    .write_chunk(groups, msgs, req, OnFail::Review, &mut chunks, |r| {
                        r.credit_notes
                    })
                    .await
                {
                    for Sent {
                        group: gi,
                        key: (ri, d),
                        answer: mut el,
                        ..
                    } in written
                    {
                        let g = &mut groups[gi];
                        if !g.live() {
                            continue;
                        }
                        let (ev, idx) = g.refunds[ri].clone();
                        let rid = ev.refund.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                        let errors = el.errors().join("; ");
                        let created = el.ok();
                        let refusal = el.refusal();
                        if pass == 0 && matches!(refusal, Some(Refusal::ArchivedContact(_))) {
                            archived.push((gi, ri, d));
                            continue;
                        }
                        if matches!(refusal, Some(Refusal::DuplicateDocumentNumber(_))) {
                            match self
                                .client
                                .call(
                                    Method::GET,
                                    "/CreditNotes",
                                    &[("where", format!("CreditNoteNumber==\"{}\"", d.number))],
                                    None,
                                )
                                .await
                            {
                                Ok(v) => el = v.credit_notes.into_iter().next().unwrap_or_default(),
                                Err(e) => {
                                    g.transient(e.to_string());
                                    continue;
                                }
                            }
                        } else if !created {
                            self.review_unapplied(
                                g,
                                "refund",
                                &msgs[idx],
                                ReasonClass::XeroValidation,
                                &format!("credit note {}: {errors}", d.number),
                                vec![],
                                None,
                            )
                            .await;
                            continue;
                        }
                        let id = el.credit_note_id.clone();
                        if id.is_empty() {
                            g.transient("credit note not found after 'must be unique'");
                            continue;
                        }
                        if created {
                            fresh_credit.insert(id.clone());
                        }
                        g.led.entry.credit_notes.insert(
                            rid,
                            CreditEntry {
                                credit_note_id: id.clone(),
                                number: d.number.clone(),
                                total: d.total,
                                method: ev
                                    .refund
                                    .as_ref()
                                    .map(|r| r.method.clone())
                                    .unwrap_or_default(),
                                ..Default::default()
                            },
                        );
                        let f = self.fact(
                            g,
                            XeroDocumentKind::CreditNote,
                            XeroVerb::Created,
                            &id,
                            &d.number,
                            Some(d.total),
                            None,
                            &d.doc.status,
                        );
                        g.facts.push(f);
                        metrics::counter!(m::WRITES, "tenant" => self.tenant().to_owned(), "kind" => "credit_note", "verb" => "Created").increment(1);
                    }
                }
            }
            if archived.is_empty() {
                break;
            }
            let mut gis: Vec<usize> = archived.iter().map(|(gi, _, _)| *gi).collect();
            gis.dedup();
            let restored = self.restore_contacts(groups, msgs, &gis).await;
            pass_todo = archived
                .into_iter()
                .filter(|(gi, _, _)| restored.contains(gi))
                .collect();
        }
        self.save(groups).await;
        // Allocate to the invoice what it still owes; refund the rest as a payment.
        let mut refunds: Vec<(usize, String, compose::XPayment)> = Vec::new();
        #[allow(clippy::needless_range_loop)] // `groups[gi]` is re-borrowed per credit note.
        for gi in 0..groups.len() {
            if !groups[gi].live() {
                continue;
            }
            let pending: Vec<String> = groups[gi]
                .led
                .entry
                .credit_notes
                .iter()
                .filter(|(_, c)| !c.done)
                .map(|(k, _)| k.clone())
                .collect();
            for rid in pending {
                let g = &mut groups[gi];
                let mut c = g.led.entry.credit_notes[&rid].clone();
                if c.total - c.allocated - c.refunded > Decimal::ZERO
                    && !fresh_credit.contains(&c.credit_note_id)
                {
                    // An earlier attempt may have been applied without our knowing (answer
                    // lost, writer restarted, beyond Xero's idempotency window): Xero's record
                    // of the credit note decides, so nothing is allocated or refunded twice.
                    match self.credit_in_xero(g, &rid, &c).await {
                        Ok(Some(known)) => c = known,
                        Ok(None) => {}
                        Err(e) => {
                            self.call_failed(g, msgs, &e).await;
                            continue;
                        }
                    }
                }
                let due = g.led.entry.amount_due();
                let left = c.total - c.allocated - c.refunded;
                let alloc = left.min(due);
                let date = chrono::Utc::now().with_timezone(&org.timezone).date_naive();
                if alloc > Decimal::ZERO {
                    let body = send::envelope(
                        "Allocations",
                        &[send::Allocation {
                            invoice: send::InvoiceRef {
                                invoice_id: g.led.entry.invoice_id.clone(),
                            },
                            amount: alloc,
                            date: date.to_string(),
                        }],
                    );
                    match self
                        .client
                        .call(
                            Method::PUT,
                            &format!("/CreditNotes/{}/Allocations", c.credit_note_id),
                            &[("summarizeErrors", "false".into())],
                            Some(body),
                        )
                        .await
                    {
                        Ok(v) => {
                            let el = v.allocations.into_iter().next().unwrap_or_default();
                            if el.ok() {
                                if let Some(ce) = g.led.entry.credit_notes.get_mut(&rid) {
                                    ce.allocated += alloc;
                                }
                                let id = el.allocation_id.clone();
                                let f = self.fact(
                                    g,
                                    XeroDocumentKind::Allocation,
                                    XeroVerb::Created,
                                    &id,
                                    &c.number,
                                    Some(alloc),
                                    None,
                                    "AUTHORISED",
                                );
                                g.facts.push(f);
                            } else {
                                let errors = el.errors().join("; ");
                                let idx = g.refunds.first().map_or(g.msgs[0], |(_, i)| *i);
                                let (reason, error) = if self.shared.config.invoice_status
                                    == DocStatus::Draft
                                    && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)))
                                {
                                    (
                                        ReasonClass::Policy,
                                        format!(
                                            "refund {rid}: credit note {} waits for approval: it or invoice {} is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero allocates only approved documents; approve them in Xero, then replay this event",
                                            c.number, g.led.entry.invoice_number
                                        ),
                                    )
                                } else {
                                    (
                                        ReasonClass::XeroValidation,
                                        format!("allocation of {}: {errors}", c.number),
                                    )
                                };
                                self.review_unapplied(
                                    g,
                                    "allocation",
                                    &msgs[idx],
                                    reason,
                                    &error,
                                    vec![],
                                    None,
                                )
                                .await;
                                continue;
                            }
                        }
                        Err(e) => {
                            self.call_failed(g, msgs, &e).await;
                            continue;
                        }
                    }
                }
                let rest = left - alloc.max(Decimal::ZERO);
                if rest > Decimal::ZERO {
                    let method = g
                        .refunds
                        .iter()
                        .find(|(r, _)| r.refund.as_ref().is_some_and(|x| x.id == rid))
                        .and_then(|(r, _)| r.refund.as_ref().map(|x| x.method.clone()))
                        .unwrap_or_else(|| c.method.clone());
                    let account = mapping.mapping.payment_account(&method).to_owned();
                    refunds.push((
                        gi,
                        rid.clone(),
                        compose::XPayment {
                            invoice: None,
                            credit_note: Some(send::CreditNoteRef {
                                credit_note_id: c.credit_note_id.clone(),
                            }),
                            account: send::AccountRef { code: account },
                            date: date.to_string(),
                            amount: rest,
                            reference: format!("{} refund", c.number),
                        },
                    ));
                } else if let Some(ce) = g.led.entry.credit_notes.get_mut(&rid) {
                    ce.done = true;
                }
            }
        }
        let req = Request::new(&Method::PUT, "/Payments", "Payments");
        let mut chunks = Chunks::new(refunds);
        while let Some(written) = self
            .write_chunk(groups, msgs, req, OnFail::Retry, &mut chunks, |r| {
                r.payments
            })
            .await
        {
            for Sent {
                group: gi,
                key: rid,
                body: p,
                answer: el,
            } in written
            {
                let g = &mut groups[gi];
                if el.ok() {
                    if let Some(ce) = g.led.entry.credit_notes.get_mut(&rid) {
                        ce.refunded += p.amount;
                        ce.done = true;
                    }
                    let id = el.payment_id.clone();
                    let mut f = self.fact(
                        g,
                        XeroDocumentKind::Payment,
                        XeroVerb::Recorded,
                        &id,
                        &rid,
                        Some(p.amount),
                        None,
                        "AUTHORISED",
                    );
                    // The account the refund was paid from: the bank feed shows it there.
                    f.account_code = p.account.code.clone();
                    g.facts.push(f);
                } else if g.live() {
                    let errors = el.errors().join("; ");
                    let idx = g.msgs[0];
                    let (reason, error) = if self.shared.config.invoice_status == DocStatus::Draft
                        && matches!(el.refusal(), Some(Refusal::NotAuthorised(_)))
                    {
                        (
                            ReasonClass::Policy,
                            format!(
                                "refund {rid} waits for approval: its credit note is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero pays back only approved credit notes; approve it in Xero, then replay this event"
                            ),
                        )
                    } else {
                        (
                            ReasonClass::XeroValidation,
                            format!("refund payment {rid}: {errors}"),
                        )
                    };
                    self.review_unapplied(g, "refund", &msgs[idx], reason, &error, vec![], None)
                        .await;
                }
            }
        }
    }

    /// Reads a credit note; returns it with its live allocations to `invoice_id`.
    pub(crate) async fn credit_note_allocations(
        &self,
        credit_note_id: &str,
        invoice_id: &str,
    ) -> Result<(model::CreditNote, Vec<model::Allocation>), XeroError> {
        let v = self
            .client
            .call(
                Method::GET,
                &format!("/CreditNotes/{credit_note_id}"),
                &[],
                None,
            )
            .await?;
        let cn = v.credit_notes.into_iter().next().unwrap_or_default();
        let mine = cn
            .allocations
            .iter()
            .filter(|a| a.credits(invoice_id))
            .cloned()
            .collect();
        Ok((cn, mine))
    }

    /// Reads a credit note and records in the ledger (with Allocation and Payment facts) what
    /// Xero has allocated from it to the order's invoice, and refunded with our reference,
    /// beyond what the ledger knows. `Some` is the updated entry when there was more.
    pub(crate) async fn credit_in_xero(
        &self,
        g: &mut OrderWork,
        rid: &str,
        c: &CreditEntry,
    ) -> Result<Option<CreditEntry>, XeroError> {
        let (cn, mine) = self
            .credit_note_allocations(&c.credit_note_id, &g.led.entry.invoice_id)
            .await?;
        let allocated: Decimal = mine
            .iter()
            .map(|a| a.amount.need("Amount"))
            .sum::<Result<Decimal, _>>()?;
        let reference = format!("{} refund", c.number);
        let refunds: Vec<&model::Payment> = cn
            .payments
            .iter()
            .filter(|p| p.reference == reference && p.status != "DELETED")
            .collect();
        let refunded: Decimal = refunds
            .iter()
            .map(|p| p.amount.need("Amount"))
            .sum::<Result<Decimal, _>>()?;
        if allocated <= c.allocated && refunded <= c.refunded {
            return Ok(None);
        }
        let mut known = c.clone();
        if allocated > c.allocated {
            let found = allocated - c.allocated;
            known.allocated = allocated;
            let id = mine
                .last()
                .map(|a| a.allocation_id.clone())
                .unwrap_or_default();
            tracing::info!(credit_note = %c.number, invoice = %g.led.entry.invoice_number, amount = %found, "Allocation from an unconfirmed attempt found in Xero; not made again.");
            let f = self.fact(
                g,
                XeroDocumentKind::Allocation,
                XeroVerb::Created,
                &id,
                &c.number,
                Some(found),
                None,
                "AUTHORISED",
            );
            g.facts.push(f);
        }
        if refunded > c.refunded {
            let found = refunded - c.refunded;
            known.refunded = refunded;
            let id = refunds
                .last()
                .map(|p| p.payment_id.clone())
                .unwrap_or_default();
            tracing::info!(credit_note = %c.number, amount = %found, "Refund payment from an unconfirmed attempt found in Xero; not made again.");
            let f = self.fact(
                g,
                XeroDocumentKind::Payment,
                XeroVerb::Recorded,
                &id,
                rid,
                Some(found),
                None,
                "AUTHORISED",
            );
            g.facts.push(f);
        }
        if let Some(ce) = g.led.entry.credit_notes.get_mut(rid) {
            *ce = known.clone();
        }
        Ok(Some(known))
    }
}
