//! The document policies (issue 6): due dates from payment terms, archived contacts made active
//! again, payments removed before a void, and changes in a locked period.

use super::*;

impl TenantWorker {
    /// Reads the sales payment terms of the contacts whose orders carry no due date (batched,
    /// and only for contacts not read within the settings lifetime).
    pub(super) async fn contact_terms(&self, groups: &mut [Group], org: &OrgSettings) {
        let ttl = self.shared.config.settings_refresh;
        let mut wanted: Vec<String> = Vec::new();
        {
            let cache = self.terms.lock().unwrap_or_else(|e| e.into_inner());
            for g in groups.iter() {
                if !g.live() || !g.converge || g.void || g.led.entry.contact_id.is_empty() {
                    continue;
                }
                let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.as_ref()) else {
                    continue;
                };
                if order.status == OrderStatus::Cancelled as i32
                    || docs::day_in(org.timezone, &order.due_date).is_some()
                {
                    continue;
                }
                let id = &g.led.entry.contact_id;
                let known = cache.get(id).is_some_and(|(_, at)| at.elapsed() < ttl);
                if !known && !wanted.contains(id) {
                    wanted.push(id.clone());
                }
            }
        }
        for chunk in wanted.chunks(40) {
            let resp = self
                .client
                .call(
                    Method::GET,
                    "/Contacts",
                    &[("IDs", chunk.join(",")), ("page", "1".into())],
                    None,
                )
                .await;
            match resp {
                Ok(v) => {
                    let mut cache = self.terms.lock().unwrap_or_else(|e| e.into_inner());
                    for id in chunk {
                        let terms = v
                            .contacts
                            .iter()
                            .find(|c| c.contact_id.eq_ignore_ascii_case(id))
                            .and_then(|c| c.payment_terms.as_ref())
                            .and_then(Terms::sales_of);
                        cache.insert(id.clone(), (terms, std::time::Instant::now()));
                    }
                }
                Err(e) => {
                    // Without the terms the due date would be wrong: try again later.
                    for g in groups
                        .iter_mut()
                        .filter(|g| chunk.contains(&g.led.entry.contact_id))
                    {
                        g.transient(format!("contact payment terms: {e}"));
                    }
                }
            }
        }
    }

    /// Orders whose contact Xero reports archived: made active again (the default policy), or
    /// sent to review. Returns the groups whose contact is active again.
    pub(super) async fn restore_contacts(
        &self,
        groups: &mut [Group],
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
                let m = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
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
                        let m = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
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
    pub(super) async fn rewrite_after_restore(
        &self,
        groups: &mut [Group],
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
            let docs: Vec<docs::XDocument> = chunk
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
                    let m = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
                    self.review(g, &msgs[m], ReasonClass::XeroValidation, &errors, vec![])
                        .await;
                }
            }
        }
    }

    /// `WRITER_LOCKED_PERIOD=credit-and-reissue`: an order that changed while its invoice lies in
    /// a locked period gets a credit note for that invoice (its lines as Xero holds them, dated
    /// after the lock date, allocated to it) and a new invoice `<number>-R<n>` dated after the
    /// lock date. Deterministic numbers make every step safe to repeat: an existing credit note
    /// or invoice of that number is adopted, a credit note already allocated is not allocated
    /// again.
    pub(super) async fn reissue_locked(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        org: &OrgSettings,
    ) {
        let today = chrono::Utc::now().with_timezone(&org.timezone).date_naive();
        for g in groups.iter_mut() {
            if !g.live() || !g.reissue {
                continue;
            }
            let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
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
            let lines: Result<Vec<docs::XLine>, ledgerline_xero_client::AmountError> = old
                .line_items
                .iter()
                .map(|l| {
                    Ok(docs::XLine {
                        description: l.description.clone(),
                        quantity: Decimal::ONE,
                        unit_amount: l.line_amount.need("LineAmount")?,
                        discount_amount: None,
                        account_code: l.account_code.clone(),
                        tax_type: l.tax_type.clone(),
                        tracking: l
                            .tracking
                            .iter()
                            .map(|t| docs::XTracking {
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
            let credit = docs::XDocument {
                kind: "ACCRECCREDIT".into(),
                invoice_id: None,
                contact: docs::XContactRef {
                    contact_id: e.contact_id.clone(),
                },
                invoice_number: None,
                credit_note_number: Some(cn_number.clone()),
                reference: if g.credit_only {
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
            if g.credit_only {
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
            inv.number = format!("{}-R{}", inv.number, e.superseded.len() + 1);
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
                    .client
                    .call(
                        Method::GET,
                        "/Invoices",
                        &[("InvoiceNumbers", inv.number.clone()), ("page", "1".into())],
                        None,
                    )
                    .await
                {
                    Ok(v) => (
                        v.invoices
                            .into_iter()
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

    /// Deletes the payments of cancelled orders whose invoices are to be voided
    /// (`WRITER_VOID_REMOVES_PAYMENTS`): one `POST /Payments/{PaymentID}` each, as Xero offers no
    /// batch for it. A payment already deleted counts as done.
    pub(super) async fn remove_payments(&self, groups: &mut [Group], msgs: &[Message]) {
        for g in groups.iter_mut() {
            if !g.live() || !g.void || !g.remove_payments {
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
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
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
}

/// The date the order's invoice carries in Xero (as written; older entries: as it would be).
pub(super) fn written_date(e: &ledger::Entry, doc: &InvoiceDoc) -> String {
    if e.date.is_empty() {
        doc.doc.date.clone()
    } else {
        e.date.clone()
    }
}

/// The org's lock date, when the invoice is dated on or before it.
pub(super) fn locked_on(
    e: &ledger::Entry,
    doc: &InvoiceDoc,
    org: &OrgSettings,
) -> Option<chrono::NaiveDate> {
    let lock = org.lock_date?;
    let date = chrono::NaiveDate::parse_from_str(&written_date(e, doc), "%Y-%m-%d").ok()?;
    (date <= lock).then_some(lock)
}

/// Why a payment (or allocation) of an order waits: its invoice is a draft.
pub(super) fn draft_wait(order: &str, what: &str, invoice: &str) -> String {
    format!(
        "order {order}: {what} waits for approval: invoice {invoice} is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero records payments only on approved invoices; approve the invoice in Xero, then replay this event"
    )
}
