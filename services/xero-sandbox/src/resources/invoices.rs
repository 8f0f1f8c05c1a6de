//! Invoices, credit notes and allocations, and the line arithmetic they share.

use super::*;

impl Ctx<'_> {
    // ---------- shared document arithmetic ----------

    pub(super) fn currency(
        &self,
        code: &Option<String>,
        rate: Option<Decimal>,
        errors: &mut Vec<Message>,
    ) -> (String, Decimal) {
        let base = self.t.org.base_currency.clone();
        let code = code
            .clone()
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| base.clone());
        if !self.t.currencies.iter().any(|c| c.code == code) {
            errors.push(Message::new(format!(
                "Organisation is not subscribed to currency {code}"
            )));
            return (code, Decimal::ONE);
        }
        if code == base {
            return (code, Decimal::ONE);
        }
        let r = rate
            .or_else(|| self.t.daily_rates.get(&code).copied())
            .unwrap_or(Decimal::ONE);
        if r <= Decimal::ZERO {
            errors.push(Message::new("The CurrencyRate must be greater than zero"));
        }
        (code, r)
    }

    pub(super) fn check_lock(&self, date: NaiveDate, errors: &mut Vec<Message>) {
        if let Some(lock) = self.t.org.period_lock_date
            && date <= lock
        {
            errors.push(Message::new(format!(
                "The document date cannot be before the period lock date, {}",
                lock.format("%d %b %Y")
            )));
        }
    }

    /// Computes lines and totals the way Xero does: per-line tax rounded to 2 dp, then summed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compute_lines(
        &self,
        lines: &[LineIn],
        existing: &[LineItem],
        lat: &str,
        sales: bool,
        allow_discount: bool,
        approving: bool,
        errors: &mut Vec<Message>,
        warnings: &mut Vec<Message>,
    ) -> (Vec<LineItem>, Decimal, Decimal, Decimal, Option<Decimal>) {
        let s = self.settings;
        let dp = self.unitdp();
        let mut out = Vec::new();
        let (mut sub, mut tax, mut disc_total) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        for l in lines {
            let mut line_errors = Vec::new();
            let (qty, unit) = match (l.quantity, l.unit_amount, l.line_amount) {
                (None, None, Some(a)) => (Decimal::ONE, a),
                (Some(q), None, Some(a)) if !q.is_zero() => (q, a / q),
                (None, Some(u), _) => (Decimal::ONE, u),
                (q, u, _) => (q.unwrap_or(Decimal::ZERO), u.unwrap_or(Decimal::ZERO)),
            };
            let qty = qty.round_dp_with_strategy(4, strategy(s));
            let unit = unit.round_dp_with_strategy(dp, strategy(s));
            let gross = qty * unit;
            if (l.discount_rate.is_some() || l.discount_amount.is_some()) && !allow_discount {
                line_errors.push(Message::new(
                    "Discounts are not supported on this document type",
                ));
            }
            let (computed, discount) = if let Some(r) = l.discount_rate {
                let c = round2(gross * (Decimal::ONE_HUNDRED - r) / Decimal::ONE_HUNDRED, s);
                (c, round2(gross, s) - c)
            } else if let Some(d) = l.discount_amount {
                (round2(gross - d, s), d)
            } else if let (Some(sent), None) = (l.line_amount, l.unit_amount) {
                // Only LineAmount (and perhaps Quantity) sent: Xero keeps the amount and derives
                // the unit price from it.
                (round2(sent, s), Decimal::ZERO)
            } else {
                (round2(gross, s), Decimal::ZERO)
            };
            disc_total += discount;
            if let Some(sent) = l.line_amount
                && l.quantity.is_some()
                && l.unit_amount.is_some()
                && round2(sent, s) != computed
            {
                line_errors.push(Message::new(format!(
                    "The line total {:.2} does not match the expected line total {:.2}",
                    round2(sent, s),
                    computed
                )));
            }
            // Account.
            let mut account_code = l.account_code.clone().filter(|c| !c.is_empty());
            let mut account_id = l.account_id;
            let account = match (&account_code, account_id) {
                (Some(code), _) => self
                    .t
                    .accounts
                    .iter()
                    .find(|a| a.code.eq_ignore_ascii_case(code)),
                (None, Some(id)) => self.t.accounts.iter().find(|a| a.account_id == id),
                _ => None,
            };
            let usable = account.filter(|a| a.status == "ACTIVE" && a.kind != "BANK");
            if (account_code.is_some() || account_id.is_some()) && usable.is_none() {
                let shown = account_code
                    .clone()
                    .or(account_id.map(|i| i.to_string()))
                    .unwrap_or_default();
                if approving {
                    line_errors.push(Message::new(format!(
                        "Account code '{shown}' is not a valid code for this document."
                    )));
                } else {
                    warnings.push(Message::new(format!(
                        "Account code '{shown}' has been removed as it does not match a recognised account."
                    )));
                    account_code = None;
                    account_id = None;
                }
            }
            if let Some(a) = usable {
                account_code = Some(a.code.clone());
                account_id = Some(a.account_id);
            }
            if approving && usable.is_none() && !computed.is_zero() {
                line_errors.push(Message::new(
                    "Account code must be specified for all line items on an approved document.",
                ));
            }
            // Tax.
            let tax_type = if lat == "NoTax" {
                Some("NONE".to_string())
            } else {
                l.tax_type
                    .clone()
                    .filter(|t| !t.is_empty())
                    .or_else(|| usable.map(|a| a.tax_type.clone()).filter(|t| !t.is_empty()))
                    .or_else(|| Some(if sales { "OUTPUT2" } else { "INPUT2" }.to_string()))
            };
            let rate = match tax_type.as_deref().map(|tt| {
                self.t
                    .tax_rates
                    .iter()
                    .find(|r| r.tax_type.eq_ignore_ascii_case(tt))
            }) {
                Some(Some(r))
                    if r.status == "ACTIVE"
                        && (if sales {
                            r.can_apply_to_revenue
                        } else {
                            r.can_apply_to_expenses || r.can_apply_to_assets
                        }) =>
                {
                    r.effective_rate
                }
                _ => {
                    line_errors.push(Message::new(format!(
                        "The TaxType code '{}' does not exist or cannot be used for this type of transaction.",
                        tax_type.clone().unwrap_or_default()
                    )));
                    Decimal::ZERO
                }
            };
            let rate = rate / Decimal::ONE_HUNDRED;
            let (line_tax, net) = match lat {
                "Inclusive" => {
                    let t = l
                        .tax_amount
                        .map(|t| round2(t, s))
                        .unwrap_or_else(|| round2(computed - computed / (Decimal::ONE + rate), s));
                    (t, computed - t)
                }
                "NoTax" => (Decimal::ZERO, computed),
                _ => (
                    l.tax_amount
                        .map(|t| round2(t, s))
                        .unwrap_or_else(|| round2(computed * rate, s)),
                    computed,
                ),
            };
            sub += net;
            tax += line_tax;
            // Tracking.
            let tracking_in = l.tracking.as_deref().unwrap_or_default();
            if tracking_in.len() > 2 {
                line_errors.push(Message::new(
                    "A line item can have at most 2 tracking categories.",
                ));
            }
            let mut tracking = Vec::new();
            for tr in tracking_in {
                let cat = self.t.tracking_categories.iter().find(|c| {
                    tr.tracking_category_id
                        .is_some_and(|id| id == c.tracking_category_id)
                        || tr
                            .name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&c.name))
                });
                let label = tr
                    .name
                    .clone()
                    .or(tr.tracking_category_id.map(|i| i.to_string()))
                    .unwrap_or_default();
                match cat {
                    Some(c) if c.status == "ACTIVE" => {
                        let opt = c.options.iter().find(|o| {
                            tr.tracking_option_id
                                .is_some_and(|id| id == o.tracking_option_id)
                                || tr
                                    .option
                                    .as_deref()
                                    .is_some_and(|n| n.eq_ignore_ascii_case(&o.name))
                        });
                        match opt {
                            Some(o) if o.status == "ACTIVE" => tracking.push(LineTracking {
                                tracking_category_id: c.tracking_category_id,
                                tracking_option_id: o.tracking_option_id,
                                name: c.name.clone(),
                                option: o.name.clone(),
                            }),
                            _ => line_errors.push(Message::new(format!(
                                "The TrackingOption '{}' does not exist or is not active for TrackingCategory '{}'.",
                                tr.option.clone().or(tr.tracking_option_id.map(|i| i.to_string())).unwrap_or_default(),
                                c.name
                            ))),
                        }
                    }
                    _ => line_errors.push(Message::new(format!(
                        "The TrackingCategory '{label}' does not exist or is not active."
                    ))),
                }
            }
            if l.description
                .as_ref()
                .is_some_and(|d| d.chars().count() > 4000)
            {
                line_errors.push(Message::new("Description must be 4000 characters or fewer"));
            }
            let line_item_id = l
                .line_item_id
                .filter(|id| existing.iter().any(|e| e.line_item_id == *id))
                .unwrap_or_else(Uuid::new_v4);
            errors.extend(line_errors.iter().cloned());
            out.push(LineItem {
                line_item_id,
                description: l.description.clone(),
                quantity: qty,
                unit_amount: unit,
                item_code: l.item_code.clone(),
                account_code,
                account_id,
                tax_type,
                tax_amount: line_tax,
                line_amount: computed,
                discount_rate: l.discount_rate,
                discount_amount: l.discount_amount,
                tracking,
                validation_errors: line_errors,
            });
        }
        let total = sub + tax;
        let discount = (!disc_total.is_zero()).then_some(disc_total);
        (out, sub, tax, total, discount)
    }

    // ---------- invoices ----------

    pub(super) fn invoice_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: DocIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let existing_idx = match target {
            Some(id) => self.t.invoices.iter().position(|i| i.invoice_id == id),
            None if upsert => match input.invoice_id {
                Some(id) => {
                    let p = self.t.invoices.iter().position(|i| i.invoice_id == id);
                    if p.is_none() {
                        errors.push(Message::new(format!("Invoice {id} could not be found")));
                    }
                    p
                }
                None => input.invoice_number.as_deref().and_then(|n| {
                    self.t.invoices.iter().position(|i| {
                        i.kind == "ACCREC"
                            && i.invoice_number.eq_ignore_ascii_case(n)
                            && i.status != "DELETED"
                            && i.status != "VOIDED"
                    })
                }),
            },
            None => None,
        };
        let existing = existing_idx.map(|i| self.t.invoices[i].clone());
        let now = Utc::now();
        if let Some(e) = bad_date(&input.date).or(bad_date(&input.due_date)) {
            errors.push(Message::new(e));
        }
        let kind = input
            .kind
            .clone()
            .map(|k| k.to_ascii_uppercase())
            .or(existing.as_ref().map(|e| e.kind.clone()))
            .unwrap_or_default();
        if kind.is_empty() {
            errors.push(Message::new("Invoice Type must be specified"));
        } else if kind != "ACCREC" && kind != "ACCPAY" {
            errors.push(Message::new(format!(
                "'{kind}' is not a valid invoice Type"
            )));
        }
        let sales = kind != "ACCPAY";
        // Status transitions.
        let old_status = existing.as_ref().map(|e| e.status.clone());
        let new_status = input
            .status
            .clone()
            .map(|s| s.to_ascii_uppercase())
            .or(old_status.clone())
            .unwrap_or_else(|| "DRAFT".into());
        let has_money = existing
            .as_ref()
            .is_some_and(|e| !e.payments.is_empty() || !e.credit_notes.is_empty());
        if ![
            "DRAFT",
            "SUBMITTED",
            "AUTHORISED",
            "VOIDED",
            "DELETED",
            "PAID",
        ]
        .contains(&new_status.as_str())
        {
            errors.push(Message::new(format!(
                "'{new_status}' is not a valid invoice Status"
            )));
        }
        match old_status.as_deref() {
            None => {
                if ["PAID", "VOIDED", "DELETED"].contains(&new_status.as_str()) {
                    errors.push(Message::new(format!(
                        "An invoice cannot be created with status {new_status}"
                    )));
                }
            }
            Some("DRAFT") | Some("SUBMITTED") => {
                if new_status == "VOIDED" || new_status == "PAID" {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some("AUTHORISED") => {
                if has_money && (new_status != "AUTHORISED" || input.line_items.is_some()) {
                    errors.push(Message::new("This document cannot be edited as it has a payment or credit note allocated to it."));
                } else if ["DRAFT", "SUBMITTED", "DELETED", "PAID"].contains(&new_status.as_str()) {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some("PAID") => {
                if new_status == "VOIDED" || has_money {
                    errors.push(Message::new("This document cannot be edited as it has a payment or credit note allocated to it."));
                } else {
                    errors.push(Message::new("Invoice not of valid status for modification"));
                }
            }
            Some(_) => errors.push(Message::new("Invoice not of valid status for modification")),
        }
        let contact = match (&input.contact, &existing) {
            (None, Some(e)) => e.contact.clone(),
            _ => self.resolve_contact(&input.contact, &mut errors),
        };
        let lat = input
            .line_amount_types
            .clone()
            .or(existing.as_ref().map(|e| e.line_amount_types.clone()))
            .unwrap_or_else(|| "Exclusive".into());
        let lat = match lat.to_ascii_lowercase().as_str() {
            "exclusive" => "Exclusive".to_string(),
            "inclusive" => "Inclusive".to_string(),
            "notax" => "NoTax".to_string(),
            _ => {
                errors.push(Message::new(format!(
                    "'{lat}' is not a valid LineAmountTypes value"
                )));
                "Exclusive".to_string()
            }
        };
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().map(|e| e.date))
            .unwrap_or_else(|| self.t.today());
        let due_date = input
            .due_date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().and_then(|e| e.due_date));
        if new_status != "DELETED" && new_status != "VOIDED" {
            self.check_lock(date, &mut errors);
        }
        let (currency_code, currency_rate) =
            match (&input.currency_code, input.currency_rate, &existing) {
                (None, None, Some(e)) => (e.currency_code.clone(), e.currency_rate),
                _ => self.currency(&input.currency_code, input.currency_rate, &mut errors),
            };
        let approving = ["AUTHORISED", "SUBMITTED"].contains(&new_status.as_str());
        let existing_lines = existing
            .as_ref()
            .map(|e| e.line_items.clone())
            .unwrap_or_default();
        let (lines, sub, tax, total, discount) = match (&input.line_items, &existing) {
            (None, Some(e)) if input.line_amount_types.is_none() => (
                e.line_items.clone(),
                e.sub_total,
                e.total_tax,
                e.total,
                e.total_discount,
            ),
            (None, Some(e)) => {
                let relined: Vec<LineIn> = e.line_items.iter().map(line_in_from).collect();
                self.compute_lines(
                    &relined,
                    &existing_lines,
                    &lat,
                    sales,
                    sales,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
            (lines, _) => {
                let lines = lines.as_deref().unwrap_or_default();
                if lines.is_empty() && existing.is_none() {
                    errors.push(Message::new(
                        "An invoice must contain at least one line item",
                    ));
                }
                self.compute_lines(
                    lines,
                    &existing_lines,
                    &lat,
                    sales,
                    sales,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
        };
        // Numbering and uniqueness.
        let number = input
            .invoice_number
            .clone()
            .or(existing.as_ref().map(|e| e.invoice_number.clone()));
        let my_id = existing.as_ref().map(|e| e.invoice_id);
        if let Some(n) = &number {
            if n.chars().count() > 255 {
                errors.push(Message::new(
                    "Invoice Number must be 255 characters or fewer",
                ));
            }
            if kind == "ACCREC"
                && self.t.invoices.iter().any(|i| {
                    Some(i.invoice_id) != my_id
                        && i.kind == "ACCREC"
                        && i.invoice_number.eq_ignore_ascii_case(n)
                        && i.status != "DELETED"
                })
            {
                errors.push(Message::new("Invoice # must be unique."));
            }
        }
        let (amount_paid, amount_credited) = existing
            .as_ref()
            .map(|e| (e.amount_paid, e.amount_credited))
            .unwrap_or_default();
        if total < amount_paid + amount_credited {
            errors.push(Message::new(
                "The invoice total cannot be less than the amount already paid or credited.",
            ));
        }
        let mut inv = Invoice {
            kind: kind.clone(),
            invoice_id: my_id.unwrap_or(EMPTY),
            invoice_number: number.clone().unwrap_or_default(),
            reference: input
                .reference
                .clone()
                .or(existing.as_ref().and_then(|e| e.reference.clone())),
            contact,
            date,
            due_date,
            status: new_status.clone(),
            line_amount_types: lat,
            line_items: lines,
            sub_total: sub,
            total_tax: tax,
            total,
            total_discount: discount,
            currency_code,
            currency_rate,
            amount_due: total - amount_paid - amount_credited,
            amount_paid,
            amount_credited,
            fully_paid_on_date: existing.as_ref().and_then(|e| e.fully_paid_on_date),
            payments: existing
                .as_ref()
                .map(|e| e.payments.clone())
                .unwrap_or_default(),
            credit_notes: existing
                .as_ref()
                .map(|e| e.credit_notes.clone())
                .unwrap_or_default(),
            url: input
                .url
                .clone()
                .or(existing.as_ref().and_then(|e| e.url.clone())),
            sent_to_contact: input
                .sent_to_contact
                .or(existing.as_ref().map(|e| e.sent_to_contact))
                .unwrap_or(false),
            is_discounted: discount.is_some(),
            has_attachments: false,
            has_errors: false,
            updated_date_utc: now,
            updated_date_utc_string: now,
            outcome: Outcome::default(),
        };
        if new_status == "VOIDED" || new_status == "DELETED" {
            inv.amount_due = Decimal::ZERO;
        }
        if !errors.is_empty() {
            inv.has_errors = true;
            inv.invoice_id = my_id.or(input.invoice_id).unwrap_or(EMPTY);
            inv.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings,
            };
            return (self.render_invoice(&inv), false);
        }
        let event = match existing_idx {
            Some(i) => {
                self.t.invoices[i] = inv.clone();
                EventKind::Update
            }
            None => {
                inv.invoice_id = Uuid::new_v4();
                if number.is_none() {
                    inv.invoice_number = if kind == "ACCREC" {
                        self.next_invoice_number()
                    } else {
                        String::new()
                    };
                }
                self.t.invoices.push(inv.clone());
                EventKind::Create
            }
        };
        if sales && approving {
            self.mark_contact(inv.contact.contact_id, true);
        } else if approving {
            self.mark_contact(inv.contact.contact_id, false);
        }
        self.touch(Category::Invoice, event, inv.invoice_id);
        inv.outcome.warnings = warnings;
        if summarize_off {
            inv.outcome.status_attribute_string = Some(
                if inv.outcome.warnings.is_empty() {
                    "OK"
                } else {
                    "WARNING"
                }
                .into(),
            );
        }
        (self.render_invoice(&inv), true)
    }

    pub(super) fn next_invoice_number(&mut self) -> String {
        loop {
            let n = format!("INV-{:04}", self.t.next_invoice_number);
            self.t.next_invoice_number += 1;
            if !self
                .t
                .invoices
                .iter()
                .any(|i| i.invoice_number.eq_ignore_ascii_case(&n))
            {
                return n;
            }
        }
    }

    pub(super) fn mark_contact(&mut self, id: Uuid, customer: bool) {
        if let Some(c) = self.t.contacts.iter_mut().find(|c| c.contact_id == id) {
            if customer {
                c.is_customer = true;
            } else {
                c.is_supplier = true;
            }
        }
    }

    // ---------- credit notes ----------

    pub(super) fn credit_note_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: DocIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let existing_idx = match target.or(if upsert { input.credit_note_id } else { None }) {
            Some(id) => {
                let p = self
                    .t
                    .credit_notes
                    .iter()
                    .position(|c| c.credit_note_id == id);
                if p.is_none() {
                    errors.push(Message::new(format!("Credit note {id} could not be found")));
                }
                p
            }
            None => None,
        };
        let existing = existing_idx.map(|i| self.t.credit_notes[i].clone());
        if let Some(e) = bad_date(&input.date) {
            errors.push(Message::new(e));
        }
        let kind = input
            .kind
            .clone()
            .map(|k| k.to_ascii_uppercase())
            .or(existing.as_ref().map(|e| e.kind.clone()))
            .unwrap_or_default();
        if kind != "ACCRECCREDIT" && kind != "ACCPAYCREDIT" {
            errors.push(Message::new(
                "Credit note Type must be ACCRECCREDIT or ACCPAYCREDIT",
            ));
        }
        let sales = kind != "ACCPAYCREDIT";
        let old_status = existing.as_ref().map(|e| e.status.clone());
        let new_status = input
            .status
            .clone()
            .map(|s| s.to_ascii_uppercase())
            .or(old_status.clone())
            .unwrap_or_else(|| "DRAFT".into());
        let has_money = existing
            .as_ref()
            .is_some_and(|e| !e.allocations.is_empty() || !e.payments.is_empty());
        match old_status.as_deref() {
            None if ["PAID", "VOIDED", "DELETED"].contains(&new_status.as_str()) => {
                errors.push(Message::new(format!("A credit note cannot be created with status {new_status}")))
            }
            None => {}
            Some("DRAFT") | Some("SUBMITTED") if new_status == "VOIDED" || new_status == "PAID" => {
                errors.push(Message::new("Document not of valid status for modification"))
            }
            Some("DRAFT") | Some("SUBMITTED") => {}
            Some("AUTHORISED") if has_money && (new_status != "AUTHORISED" || input.line_items.is_some()) => errors.push(
                Message::new("This document cannot be edited as it has a payment or credit note allocated to it."),
            ),
            Some("AUTHORISED") if ["DRAFT", "SUBMITTED", "DELETED", "PAID"].contains(&new_status.as_str()) => {
                errors.push(Message::new("Document not of valid status for modification"))
            }
            Some("AUTHORISED") => {}
            Some(_) => errors.push(Message::new("Document not of valid status for modification")),
        }
        let contact = match (&input.contact, &existing) {
            (None, Some(e)) => e.contact.clone(),
            _ => self.resolve_contact(&input.contact, &mut errors),
        };
        let lat = input
            .line_amount_types
            .clone()
            .or(existing.as_ref().map(|e| e.line_amount_types.clone()))
            .unwrap_or_else(|| "Exclusive".into());
        let lat = match lat.to_ascii_lowercase().as_str() {
            "inclusive" => "Inclusive",
            "notax" => "NoTax",
            _ => "Exclusive",
        }
        .to_string();
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .or(existing.as_ref().map(|e| e.date))
            .unwrap_or_else(|| self.t.today());
        if new_status != "DELETED" && new_status != "VOIDED" {
            self.check_lock(date, &mut errors);
        }
        let (currency_code, currency_rate) =
            match (&input.currency_code, input.currency_rate, &existing) {
                (None, None, Some(e)) => (e.currency_code.clone(), e.currency_rate),
                _ => self.currency(&input.currency_code, input.currency_rate, &mut errors),
            };
        let approving = ["AUTHORISED", "SUBMITTED"].contains(&new_status.as_str());
        let existing_lines = existing
            .as_ref()
            .map(|e| e.line_items.clone())
            .unwrap_or_default();
        let (lines, sub, tax, total, _) = match (&input.line_items, &existing) {
            (None, Some(e)) => (
                e.line_items.clone(),
                e.sub_total,
                e.total_tax,
                e.total,
                None,
            ),
            (lines, _) => {
                let lines = lines.as_deref().unwrap_or_default();
                self.compute_lines(
                    lines,
                    &existing_lines,
                    &lat,
                    sales,
                    false,
                    approving,
                    &mut errors,
                    &mut warnings,
                )
            }
        };
        let number = input
            .credit_note_number
            .clone()
            .or(existing.as_ref().map(|e| e.credit_note_number.clone()));
        let my_id = existing.as_ref().map(|e| e.credit_note_id);
        if let Some(n) = &number
            && kind == "ACCRECCREDIT"
            && self.t.credit_notes.iter().any(|c| {
                Some(c.credit_note_id) != my_id
                    && c.kind == kind
                    && c.credit_note_number.eq_ignore_ascii_case(n)
                    && c.status != "DELETED"
            })
        {
            errors.push(Message::new("Credit Note # must be unique."));
        }
        let used = existing
            .as_ref()
            .map(|e| e.total - e.remaining_credit)
            .unwrap_or_default();
        let now = Utc::now();
        let mut cn = CreditNote {
            kind: kind.clone(),
            credit_note_id: my_id.unwrap_or(EMPTY),
            credit_note_number: number.clone().unwrap_or_default(),
            reference: input
                .reference
                .clone()
                .or(existing.as_ref().and_then(|e| e.reference.clone())),
            contact,
            date,
            due_date: input.due_date.as_deref().and_then(parse_day),
            status: new_status.clone(),
            line_amount_types: lat,
            line_items: lines,
            sub_total: sub,
            total_tax: tax,
            total,
            currency_code,
            currency_rate,
            remaining_credit: if new_status == "VOIDED" || new_status == "DELETED" {
                Decimal::ZERO
            } else {
                total - used
            },
            fully_paid_on_date: existing.as_ref().and_then(|e| e.fully_paid_on_date),
            allocations: existing
                .as_ref()
                .map(|e| e.allocations.clone())
                .unwrap_or_default(),
            payments: existing
                .as_ref()
                .map(|e| e.payments.clone())
                .unwrap_or_default(),
            sent_to_contact: false,
            has_attachments: false,
            has_errors: false,
            updated_date_utc: now,
            updated_date_utc_string: now,
            outcome: Outcome::default(),
        };
        if !errors.is_empty() {
            cn.has_errors = true;
            cn.credit_note_id = my_id.or(input.credit_note_id).unwrap_or(EMPTY);
            cn.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings,
            };
            return (self.render_credit_note(&cn), false);
        }
        let event = match existing_idx {
            Some(i) => {
                self.t.credit_notes[i] = cn.clone();
                EventKind::Update
            }
            None => {
                cn.credit_note_id = Uuid::new_v4();
                if number.is_none() {
                    cn.credit_note_number = format!("CN-{:04}", self.t.next_credit_note_number);
                    self.t.next_credit_note_number += 1;
                }
                self.t.credit_notes.push(cn.clone());
                EventKind::Create
            }
        };
        self.touch(Category::CreditNote, event, cn.credit_note_id);
        cn.outcome.warnings = warnings;
        if summarize_off {
            cn.outcome.status_attribute_string = Some("OK".into());
        }
        (self.render_credit_note(&cn), true)
    }

    pub(super) fn allocation_element(
        &mut self,
        raw: &RawValue,
        _upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: AllocationIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize_off = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        let Some(ci) = target.and_then(|id| {
            self.t
                .credit_notes
                .iter()
                .position(|c| c.credit_note_id == id)
        }) else {
            return (error_json("Credit note could not be found"), false);
        };
        let amount = input.amount.unwrap_or_default();
        let date = input
            .date
            .as_deref()
            .and_then(parse_day)
            .unwrap_or_else(|| self.t.today());
        let inv_idx = input.invoice.as_ref().and_then(|r| {
            self.t.invoices.iter().position(|i| {
                r.invoice_id.is_some_and(|id| id == i.invoice_id)
                    || r.invoice_number
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&i.invoice_number))
            })
        });
        let cn = self.t.credit_notes[ci].clone();
        if cn.status != "AUTHORISED" {
            errors.push(Message::new(
                "Credit note must be AUTHORISED before it can be allocated",
            ));
        }
        if amount <= Decimal::ZERO {
            errors.push(Message::new("Allocation amount must be greater than zero"));
        }
        if amount > cn.remaining_credit {
            errors.push(Message::new(
                "The amount being allocated exceeds the remaining credit on the credit note",
            ));
        }
        let inv_ref = match inv_idx {
            None => {
                errors.push(Message::new("Invoice could not be found"));
                InvoiceRef {
                    invoice_id: EMPTY,
                    invoice_number: String::new(),
                    kind: None,
                    status: None,
                    amount_due: None,
                    amount_paid: None,
                    total: None,
                    currency_code: None,
                }
            }
            Some(ii) => {
                let inv = &self.t.invoices[ii];
                if inv.status != "AUTHORISED" {
                    errors.push(Message::new(
                        "Invoice must be AUTHORISED to allocate a credit note to it",
                    ));
                }
                if amount > inv.amount_due {
                    errors.push(Message::new(
                        "The amount being allocated exceeds the amount due on the invoice",
                    ));
                }
                if inv.currency_code != cn.currency_code {
                    errors.push(Message::new(
                        "The credit note and invoice must be in the same currency",
                    ));
                }
                if (cn.kind == "ACCRECCREDIT") != (inv.kind == "ACCREC") {
                    errors.push(Message::new(
                        "The credit note type does not match the invoice type",
                    ));
                }
                invoice_ref(inv)
            }
        };
        self.check_lock(date, &mut errors);
        let mut alloc = Allocation {
            allocation_id: EMPTY,
            invoice: inv_ref,
            amount,
            date,
            is_deleted: false,
            outcome: Outcome::default(),
        };
        if !errors.is_empty() {
            alloc.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&alloc), false);
        }
        let ii = inv_idx.unwrap_or_default();
        alloc.allocation_id = Uuid::new_v4();
        let now = Utc::now();
        {
            let inv = &mut self.t.invoices[ii];
            inv.amount_credited += amount;
            inv.amount_due -= amount;
            inv.credit_notes.push(CreditNoteRef {
                credit_note_id: cn.credit_note_id,
                credit_note_number: cn.credit_note_number.clone(),
                applied_amount: amount,
                total: cn.total,
                date,
            });
            if inv.amount_due.is_zero() {
                inv.status = "PAID".into();
                inv.fully_paid_on_date = Some(date);
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            alloc.invoice = invoice_ref(inv);
        }
        {
            let c = &mut self.t.credit_notes[ci];
            c.remaining_credit -= amount;
            c.allocations.push(alloc.clone());
            if c.remaining_credit.is_zero() {
                c.status = "PAID".into();
                c.fully_paid_on_date = Some(date);
            }
            c.updated_date_utc = now;
            c.updated_date_utc_string = now;
        }
        let inv_id = self.t.invoices[ii].invoice_id;
        self.touch(Category::CreditNote, EventKind::Update, cn.credit_note_id);
        self.touch(Category::Invoice, EventKind::Update, inv_id);
        if summarize_off {
            alloc.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&alloc), true)
    }

    pub(super) fn delete_allocation(&mut self, cn_id: &str, alloc_id: &str) -> Resp {
        let Some(ci) = self
            .t
            .credit_notes
            .iter()
            .position(|c| c.credit_note_id.to_string() == cn_id)
        else {
            return not_found();
        };
        let Some(ai) = self.t.credit_notes[ci]
            .allocations
            .iter()
            .position(|a| a.allocation_id.to_string() == alloc_id && !a.is_deleted)
        else {
            return not_found();
        };
        let now = Utc::now();
        let mut alloc = self.t.credit_notes[ci].allocations.remove(ai);
        let cn = &mut self.t.credit_notes[ci];
        cn.remaining_credit += alloc.amount;
        if cn.status == "PAID" {
            cn.status = "AUTHORISED".into();
            cn.fully_paid_on_date = None;
        }
        cn.updated_date_utc = now;
        cn.updated_date_utc_string = now;
        let cn_id = cn.credit_note_id;
        if let Some(inv) = self
            .t
            .invoices
            .iter_mut()
            .find(|i| i.invoice_id == alloc.invoice.invoice_id)
        {
            inv.amount_credited -= alloc.amount;
            inv.amount_due += alloc.amount;
            if let Some(p) = inv
                .credit_notes
                .iter()
                .position(|c| c.credit_note_id == cn_id && c.applied_amount == alloc.amount)
            {
                inv.credit_notes.remove(p);
            }
            if inv.status == "PAID" {
                inv.status = "AUTHORISED".into();
                inv.fully_paid_on_date = None;
            }
            inv.updated_date_utc = now;
            inv.updated_date_utc_string = now;
            alloc.invoice = invoice_ref(inv);
        }
        alloc.is_deleted = true;
        self.touch(Category::CreditNote, EventKind::Update, cn_id);
        envelope(self.provider, "Allocations", &[ser(&alloc)], None::<&()>)
    }
}
