//! Payments against invoices, refunds of credit notes, and payment deletion.

use super::*;

impl Ctx<'_> {
    // ---------- payments ----------

    pub(super) fn payment_element(
        &mut self,
        raw: &RawValue,
        _upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: PaymentIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if let Some(id) = target.or(input.payment_id.filter(|_| input.status.is_some())) {
            return self.delete_payment(id, &input, summarize_off);
        }
        let mut errors = Vec::new();
        if let Some(e) = bad_date(&input.date) {
            errors.push(Message::new(e));
        }
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .unwrap_or_else(|| self.t.today());
        let amount = input.amount.unwrap_or_default();
        if amount <= Decimal::ZERO {
            errors.push(Message::new("Payment amount must be greater than zero"));
        }
        let inv_number = input
            .invoice
            .as_ref()
            .and_then(|r| r.invoice_number.clone())
            .or(input.invoice_number.clone());
        let inv_id = input.invoice.as_ref().and_then(|r| r.invoice_id);
        let cn_number = input
            .credit_note
            .as_ref()
            .and_then(|r| r.credit_note_number.clone())
            .or(input.credit_note_number.clone());
        let cn_id = input.credit_note.as_ref().and_then(|r| r.credit_note_id);
        let acct_code = input
            .account
            .as_ref()
            .and_then(|a| a.code.clone())
            .or(input.code.clone());
        let acct_id = input.account.as_ref().and_then(|a| a.account_id);
        let account = self.t.accounts.iter().find(|a| {
            acct_id.is_some_and(|id| id == a.account_id)
                || acct_code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&a.code))
        });
        let account_ref = match account {
            Some(a)
                if a.status == "ACTIVE" && (a.kind == "BANK" || a.enable_payments_to_account) =>
            {
                AccountRef {
                    account_id: a.account_id,
                    code: a.code.clone(),
                }
            }
            Some(a) => {
                errors.push(Message::new(format!(
                    "Account {} is not a bank account and does not have payments enabled",
                    a.code
                )));
                AccountRef {
                    account_id: a.account_id,
                    code: a.code.clone(),
                }
            }
            None => {
                errors.push(Message::new("Account could not be found"));
                AccountRef {
                    account_id: EMPTY,
                    code: acct_code.clone().unwrap_or_default(),
                }
            }
        };
        self.check_lock(date, &mut errors);
        let inv_idx = if inv_id.is_some() || inv_number.is_some() {
            self.t.invoices.iter().position(|i| {
                inv_id.is_some_and(|id| id == i.invoice_id)
                    || (inv_id.is_none()
                        && inv_number
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&i.invoice_number)))
            })
        } else {
            None
        };
        let cn_idx = if inv_idx.is_none() && (cn_id.is_some() || cn_number.is_some()) {
            self.t.credit_notes.iter().position(|c| {
                cn_id.is_some_and(|id| id == c.credit_note_id)
                    || (cn_id.is_none()
                        && cn_number
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&c.credit_note_number)))
            })
        } else {
            None
        };
        let now = Utc::now();
        let mut payment = Payment {
            payment_id: EMPTY,
            date,
            amount,
            bank_amount: amount,
            currency_rate: Decimal::ONE,
            reference: input.reference.clone(),
            is_reconciled: input.is_reconciled.unwrap_or(false),
            status: "AUTHORISED".into(),
            payment_type: "ACCRECPAYMENT".into(),
            account: account_ref,
            invoice: None,
            credit_note: None,
            batch_payment_id: None,
            has_account: true,
            has_validation_errors: false,
            updated_date_utc: now,
            outcome: Outcome::default(),
        };
        let (outstanding, status, currency, doc_rate) = match (inv_idx, cn_idx) {
            (Some(i), _) => {
                let inv = &self.t.invoices[i];
                payment.invoice = Some(invoice_ref(inv));
                payment.payment_type = if inv.kind == "ACCPAY" {
                    "ACCPAYPAYMENT"
                } else {
                    "ACCRECPAYMENT"
                }
                .into();
                (
                    inv.amount_due,
                    inv.status.clone(),
                    inv.currency_code.clone(),
                    inv.currency_rate,
                )
            }
            (None, Some(c)) => {
                let cn = &self.t.credit_notes[c];
                payment.credit_note = Some(CreditNoteLink {
                    credit_note_id: cn.credit_note_id,
                    credit_note_number: cn.credit_note_number.clone(),
                    remaining_credit: Some(cn.remaining_credit),
                    status: Some(cn.status.clone()),
                });
                payment.payment_type = if cn.kind == "ACCPAYCREDIT" {
                    "APCREDITPAYMENT"
                } else {
                    "ARCREDITPAYMENT"
                }
                .into();
                (
                    cn.remaining_credit,
                    cn.status.clone(),
                    cn.currency_code.clone(),
                    cn.currency_rate,
                )
            }
            (None, None) => {
                errors.push(Message::new(if inv_id.is_some() || inv_number.is_some() {
                    "Invoice could not be found"
                } else if cn_id.is_some() || cn_number.is_some() {
                    "Credit note could not be found"
                } else {
                    "You must specify an Invoice, CreditNote, Prepayment or Overpayment for the payment"
                }));
                (
                    Decimal::ZERO,
                    String::new(),
                    self.t.org.base_currency.clone(),
                    Decimal::ONE,
                )
            }
        };
        if (inv_idx.is_some() || cn_idx.is_some()) && status != "AUTHORISED" {
            errors.push(Message::new(
                "Payments can only be made against Authorised documents.",
            ));
        } else if amount > outstanding && (inv_idx.is_some() || cn_idx.is_some()) {
            errors.push(Message::new(
                "Payment amount exceeds the amount outstanding on this document",
            ));
        }
        if currency != self.t.org.base_currency {
            payment.currency_rate = input
                .currency_rate
                .or_else(|| self.t.daily_rates.get(&currency).copied())
                .unwrap_or(doc_rate);
            if !payment.currency_rate.is_zero() {
                payment.bank_amount = round2(amount / payment.currency_rate, self.settings);
            }
        }
        if !errors.is_empty() {
            payment.has_validation_errors = true;
            payment.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&payment), false);
        }
        payment.payment_id = Uuid::new_v4();
        let pref = PaymentRef {
            payment_id: payment.payment_id,
            date,
            amount,
            currency_rate: payment.currency_rate,
            reference: payment.reference.clone(),
            has_account: false,
            has_validation_errors: false,
        };
        if let Some(i) = inv_idx {
            let inv = &mut self.t.invoices[i];
            inv.amount_paid += amount;
            inv.amount_due -= amount;
            inv.payments.push(pref);
            if inv.amount_due.is_zero() {
                inv.status = "PAID".into();
                inv.fully_paid_on_date = Some(date);
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            payment.invoice = Some(invoice_ref(inv));
            let id = inv.invoice_id;
            self.touch(Category::Invoice, EventKind::Update, id);
        } else if let Some(c) = cn_idx {
            let cn = &mut self.t.credit_notes[c];
            cn.remaining_credit -= amount;
            cn.payments.push(pref);
            if cn.remaining_credit.is_zero() {
                cn.status = "PAID".into();
                cn.fully_paid_on_date = Some(date);
            }
            cn.updated_date_utc = now;
            cn.updated_date_utc_string = now;
            payment.credit_note = Some(CreditNoteLink {
                credit_note_id: cn.credit_note_id,
                credit_note_number: cn.credit_note_number.clone(),
                remaining_credit: Some(cn.remaining_credit),
                status: Some(cn.status.clone()),
            });
            let id = cn.credit_note_id;
            self.touch(Category::CreditNote, EventKind::Update, id);
        }
        self.t.payments.push(payment.clone());
        if summarize_off {
            payment.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&payment), true)
    }

    pub(super) fn delete_payment(
        &mut self,
        id: Uuid,
        input: &PaymentIn,
        summarize_off: bool,
    ) -> (String, bool) {
        let Some(pi) = self.t.payments.iter().position(|p| p.payment_id == id) else {
            return (error_json("Payment could not be found"), false);
        };
        let mut p = self.t.payments[pi].clone();
        let wanted = input
            .status
            .clone()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut errors = Vec::new();
        if wanted != "DELETED" {
            errors.push(Message::new(
                "Payments can only be deleted; send Status DELETED",
            ));
        } else if p.status == "DELETED" {
            errors.push(Message::new("This payment has already been deleted"));
        } else if p.batch_payment_id.is_some() && !self.deleting_batch {
            errors.push(Message::new(
                "Payments that are part of a batch payment cannot be deleted individually; delete the batch",
            ));
        }
        if !errors.is_empty() {
            p.has_validation_errors = true;
            p.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&p), false);
        }
        let now = Utc::now();
        p.status = "DELETED".into();
        p.updated_date_utc = now;
        if let Some(r) = &p.invoice
            && let Some(inv) = self
                .t
                .invoices
                .iter_mut()
                .find(|i| i.invoice_id == r.invoice_id)
        {
            inv.amount_paid -= p.amount;
            inv.amount_due += p.amount;
            inv.payments.retain(|x| x.payment_id != id);
            if inv.status == "PAID" {
                inv.status = "AUTHORISED".into();
                inv.fully_paid_on_date = None;
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            p.invoice = Some(invoice_ref(inv));
            let iid = inv.invoice_id;
            self.touch(Category::Invoice, EventKind::Update, iid);
        }
        if let Some(r) = &p.credit_note
            && let Some(cn) = self
                .t
                .credit_notes
                .iter_mut()
                .find(|c| c.credit_note_id == r.credit_note_id)
        {
            cn.remaining_credit += p.amount;
            cn.payments.retain(|x| x.payment_id != id);
            if cn.status == "PAID" {
                cn.status = "AUTHORISED".into();
                cn.fully_paid_on_date = None;
            }
            cn.updated_date_utc = now;
            cn.updated_date_utc_string = now;
            let cid = cn.credit_note_id;
            self.touch(Category::CreditNote, EventKind::Update, cid);
        }
        self.t.payments[pi] = p.clone();
        if summarize_off {
            p.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&p), true)
    }

    /// `PUT /BatchPayments` element: every payment is checked first, then all are applied.
    pub(super) fn batch_payment_element(
        &mut self,
        raw: &RawValue,
        _upsert: bool,
        _target: Option<Uuid>,
    ) -> (String, bool) {
        let input: BatchPaymentIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let mut errors = Vec::new();
        if let Some(e) = bad_date(&input.date) {
            errors.push(Message::new(e));
        }
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .unwrap_or_else(|| self.t.today());
        self.check_lock(date, &mut errors);
        let acct = input.account.as_ref();
        let account = self.t.accounts.iter().find(|a| {
            acct.and_then(|r| r.account_id)
                .is_some_and(|id| id == a.account_id)
                || acct
                    .and_then(|r| r.code.as_deref())
                    .is_some_and(|c| c.eq_ignore_ascii_case(&a.code))
        });
        let account_ref = match account {
            Some(a)
                if a.status == "ACTIVE" && (a.kind == "BANK" || a.enable_payments_to_account) =>
            {
                AccountRef {
                    account_id: a.account_id,
                    code: a.code.clone(),
                }
            }
            _ => {
                errors.push(Message::new(
                    "A batch payment needs a bank account or one with payments enabled",
                ));
                AccountRef {
                    account_id: EMPTY,
                    code: String::new(),
                }
            }
        };
        if input.payments.is_empty() {
            errors.push(Message::new(
                "A batch payment must contain at least one payment",
            ));
        }
        // Resolve and check every payment against what is still owing, counting earlier lines.
        let mut planned: Vec<(usize, Decimal)> = Vec::new();
        let mut kinds = std::collections::BTreeSet::new();
        for p in &input.payments {
            let r = p.invoice.as_ref();
            let idx = self.t.invoices.iter().position(|i| {
                r.and_then(|r| r.invoice_id)
                    .is_some_and(|id| id == i.invoice_id)
                    || r.and_then(|r| r.invoice_number.as_deref())
                        .is_some_and(|n| n.eq_ignore_ascii_case(&i.invoice_number))
            });
            let amount = p.amount.unwrap_or_default();
            let Some(i) = idx else {
                errors.push(Message::new("Invoice could not be found"));
                continue;
            };
            let inv = &self.t.invoices[i];
            kinds.insert(inv.kind.clone());
            let already: Decimal = planned
                .iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, a)| *a)
                .sum();
            if inv.status != "AUTHORISED" {
                errors.push(Message::new(
                    "Payments can only be made against Authorised documents.",
                ));
            } else if amount <= Decimal::ZERO {
                errors.push(Message::new("Payment amount must be greater than zero"));
            } else if amount + already > inv.amount_due {
                errors.push(Message::new(
                    "Payment amount exceeds the amount outstanding on this document",
                ));
            }
            if inv.currency_code != self.t.org.base_currency {
                errors.push(Message::new(
                    "Batch payments are only supported in the base currency",
                ));
            }
            planned.push((i, amount));
        }
        if kinds.len() > 1 {
            errors.push(Message::new(
                "A batch payment cannot mix sales invoices and bills",
            ));
        }
        let kind = if kinds.contains("ACCPAY") {
            "PAYBATCH"
        } else {
            "RECBATCH"
        };
        let now = Utc::now();
        let mut batch = BatchPayment {
            batch_payment_id: EMPTY,
            account: account_ref.clone(),
            reference: input.reference.clone(),
            date,
            kind: kind.into(),
            status: "AUTHORISED".into(),
            total_amount: planned.iter().map(|(_, a)| *a).sum(),
            is_reconciled: input.is_reconciled.unwrap_or(false),
            payments: Vec::new(),
            updated_date_utc: now,
            validation_errors: Vec::new(),
        };
        if input
            .status
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("AUTHORISED"))
        {
            errors.push(Message::new("A new batch payment must be AUTHORISED"));
        }
        if !errors.is_empty() {
            batch.validation_errors = errors;
            return (ser(&batch), false);
        }
        batch.batch_payment_id = Uuid::new_v4();
        for (i, amount) in planned {
            let payment_id = Uuid::new_v4();
            let inv = &mut self.t.invoices[i];
            inv.amount_paid += amount;
            inv.amount_due -= amount;
            inv.payments.push(PaymentRef {
                payment_id,
                date,
                amount,
                currency_rate: Decimal::ONE,
                reference: batch.reference.clone(),
                has_account: false,
                has_validation_errors: false,
            });
            if inv.amount_due.is_zero() {
                inv.status = "PAID".into();
                inv.fully_paid_on_date = Some(date);
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            let payment = Payment {
                payment_id,
                date,
                amount,
                bank_amount: amount,
                currency_rate: Decimal::ONE,
                reference: batch.reference.clone(),
                is_reconciled: batch.is_reconciled,
                status: "AUTHORISED".into(),
                payment_type: if inv.kind == "ACCPAY" {
                    "ACCPAYPAYMENT"
                } else {
                    "ACCRECPAYMENT"
                }
                .into(),
                account: account_ref.clone(),
                invoice: Some(invoice_ref(inv)),
                credit_note: None,
                batch_payment_id: Some(batch.batch_payment_id),
                has_account: true,
                has_validation_errors: false,
                updated_date_utc: now,
                outcome: Outcome::default(),
            };
            let id = inv.invoice_id;
            self.touch(Category::Invoice, EventKind::Update, id);
            self.t.payments.push(payment.clone());
            batch.payments.push(payment);
        }
        self.t.batch_payments.push(batch.clone());
        (ser(&batch), true)
    }

    /// `POST /BatchPayments/{id}` with `Status: DELETED`: deletes every payment of the batch.
    pub(super) fn delete_batch_payment(&mut self, id: Uuid) -> Resp {
        let Some(bi) = self
            .t
            .batch_payments
            .iter()
            .position(|b| b.batch_payment_id == id)
        else {
            return not_found();
        };
        let els = match elements(self.req.body, "BatchPayments") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let wanted: Option<String> = els
            .first()
            .and_then(|r| parse_el::<BatchPaymentIn>(r).ok())
            .and_then(|b| b.status)
            .map(|s| s.to_ascii_uppercase());
        if wanted.as_deref() != Some("DELETED") {
            return bad_request("Batch payments can only be deleted; send Status DELETED");
        }
        if self.t.batch_payments[bi].status == "DELETED" {
            return bad_request("This batch payment has already been deleted");
        }
        let ids: Vec<Uuid> = self.t.batch_payments[bi]
            .payments
            .iter()
            .map(|p| p.payment_id)
            .collect();
        self.deleting_batch = true;
        let delete = PaymentIn {
            status: Some("DELETED".into()),
            ..Default::default()
        };
        for pid in ids {
            self.delete_payment(pid, &delete, false);
        }
        self.deleting_batch = false;
        let now = Utc::now();
        let payments: Vec<Payment> = self.t.batch_payments[bi]
            .payments
            .iter()
            .filter_map(|p| {
                self.t
                    .payments
                    .iter()
                    .find(|x| x.payment_id == p.payment_id)
                    .cloned()
            })
            .collect();
        let b = &mut self.t.batch_payments[bi];
        b.status = "DELETED".into();
        b.updated_date_utc = now;
        b.payments = payments;
        let out = b.clone();
        envelope(self.provider, "BatchPayments", &[ser(&out)], None::<&()>)
    }
}
