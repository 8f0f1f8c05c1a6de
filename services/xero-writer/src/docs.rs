//! Canonical orders and refunds → Xero request elements, checked against the org's settings
//! before any call is spent.
//!
//! Totals: Xero rounds tax per line, so its total can differ from the store's by a cent or two;
//! an explicit rounding line to the mapping's rounding account makes Xero's total equal the
//! order's to the cent.

use crate::config::{DocStatus, UnknownTracking};
use crate::org::OrgSettings;
use crate::terms::Terms;
use chrono::{DateTime, NaiveDate};
use ledgerline_contract::v1::{LineItem, LineKind, Order, ReasonClass, RefundEvent, Suggestion};
use ledgerline_mapping::{Mapping, PatternValues};
use ledgerline_xero_client::model::send;
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// Largest difference a rounding line may absorb; more means the data is wrong.
const MAX_ROUNDING: Decimal = Decimal::from_parts(100, 0, 0, false, 2);

/// Why a document cannot be written as it stands (goes to the review queue).
#[derive(Debug, Clone)]
pub struct Problem {
    /// Dead-letter class.
    pub reason: ReasonClass,
    /// What is wrong.
    pub error: String,
    /// Ranked fixes.
    pub suggestions: Vec<Suggestion>,
}

impl Problem {
    fn mapping(error: String, suggestions: Vec<Suggestion>) -> Self {
        Self {
            reason: ReasonClass::Mapping,
            error,
            suggestions,
        }
    }
}

/// A line item as sent.
pub type XLine = send::Line;
/// One tracking value.
pub type XTracking = send::Tracking;
/// A contact reference.
pub type XContactRef = send::ContactRef;
/// An invoice or credit note as sent.
pub type XDocument = send::Document;
/// A payment (on an invoice, or a refund of a credit note) as sent.
pub type XPayment = send::Payment;

/// An invoice ready to send.
#[derive(Debug, Clone)]
pub struct InvoiceDoc {
    /// The element (without InvoiceID).
    pub doc: XDocument,
    /// InvoiceNumber.
    pub number: String,
    /// Content hash.
    pub hash: String,
    /// Needs `unitdp=4`.
    pub unitdp4: bool,
    /// The order's total (what Xero's total will be).
    pub total: Decimal,
    /// Tracking values dropped because the org lacks them.
    pub dropped_tracking: Vec<String>,
}

/// Parses a decimal string; empty is zero.
pub fn dec(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(Decimal::ZERO);
    }
    Decimal::from_str(t).map_err(|e| format!("{t:?} is not a decimal: {e}"))
}

fn money(m: &Option<ledgerline_contract::v1::Money>) -> Result<Decimal, String> {
    m.as_ref().map_or(Ok(Decimal::ZERO), |m| dec(&m.amount))
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The calendar day of an RFC 3339 instant in the org's timezone (or a bare date).
pub fn day_in(tz: chrono_tz::Tz, when: &str) -> Option<NaiveDate> {
    if let Ok(t) = DateTime::parse_from_rfc3339(when.trim()) {
        return Some(t.with_timezone(&tz).date_naive());
    }
    NaiveDate::parse_from_str(when.get(..10)?, "%Y-%m-%d").ok()
}

fn kind_of(l: &LineItem) -> LineKind {
    LineKind::try_from(l.kind).unwrap_or(LineKind::Unspecified)
}

fn description(l: &LineItem, kind: LineKind) -> String {
    let d = l.description.trim();
    if !d.is_empty() {
        return d.chars().take(4000).collect();
    }
    if !l.sku.is_empty() {
        return l.sku.clone();
    }
    match kind {
        LineKind::Shipping => "Shipping",
        LineKind::Handling => "Handling",
        LineKind::Fee => "Fee",
        LineKind::Discount => "Discount",
        LineKind::Rounding => "Rounding",
        _ => "Item",
    }
    .to_owned()
}

struct Built {
    lines: Vec<XLine>,
    xero_total: Decimal,
    /// Tax as Xero will compute it (per line, rounded).
    xero_tax: Decimal,
    unitdp4: bool,
    dropped_tracking: Vec<String>,
}

/// Builds the lines; when an untaxed order-level discount leaves Xero's tax above the store's
/// (the store's item taxes already reflect the discount), the discount is apportioned across
/// the document's tax codes by their share of the lines, which is how such a discount reduces
/// each rate's base, and that version is used if it explains the store's tax better.
fn build_lines(
    lines: &[LineItem],
    tax_included: bool,
    tracking: &[(String, String)],
    mapping: &Mapping,
    org: &OrgSettings,
    allow_discount: bool,
) -> Result<Built, Problem> {
    let plain = build_lines_as_is(lines, tax_included, tracking, mapping, org, allow_discount)?;
    let untaxed_discount = lines
        .iter()
        .any(|l| kind_of(l) == LineKind::Discount && !l.taxable);
    if tax_included || !untaxed_discount {
        return Ok(plain);
    }
    let store_tax: Decimal = lines
        .iter()
        .map(|l| money(&l.tax_amount).unwrap_or_default())
        .sum();
    let Some(split) = apportion_discounts(lines, mapping) else {
        return Ok(plain);
    };
    match build_lines_as_is(&split, tax_included, tracking, mapping, org, allow_discount) {
        Ok(alt) if (alt.xero_tax - store_tax).abs() < (plain.xero_tax - store_tax).abs() => Ok(alt),
        _ => Ok(plain),
    }
}

/// Untaxed discount lines split across the taxable lines' codes, in proportion to their amounts.
fn apportion_discounts(lines: &[LineItem], mapping: &Mapping) -> Option<Vec<LineItem>> {
    let is_split = |l: &LineItem| kind_of(l) == LineKind::Discount && !l.taxable;
    let mut bases: Vec<(String, bool, Decimal)> = Vec::new();
    for l in lines.iter().filter(|l| !is_split(l)) {
        let amount = money(&l.line_total).ok()?;
        let key = if l.taxable {
            l.source_tax_code.clone()
        } else {
            String::new()
        };
        match bases.iter_mut().find(|(k, _, _)| *k == key) {
            Some(b) => b.2 += amount,
            None => bases.push((key, l.taxable, amount)),
        }
    }
    let total: Decimal = bases.iter().map(|b| b.2).sum();
    if total <= Decimal::ZERO || bases.len() < 2 && bases.first().is_some_and(|b| !b.1) {
        return None;
    }
    let mut out = Vec::new();
    for l in lines {
        if !is_split(l) {
            out.push(l.clone());
            continue;
        }
        let amount = money(&l.line_total).ok()?;
        let mut left = amount;
        for (i, (code, taxable, base)) in bases.iter().enumerate() {
            let part = if i + 1 == bases.len() {
                left
            } else {
                round2(amount * *base / total)
            };
            left -= part;
            if part.is_zero() {
                continue;
            }
            let rate = mapping.tax_code(code).map(|c| c.rate).unwrap_or_default();
            let mut p = l.clone();
            p.quantity = "1".into();
            p.unit_price = Some(ledgerline_contract::v1::Money {
                amount: part.to_string(),
                currency: String::new(),
            });
            p.line_total = p.unit_price.clone();
            p.discount = None;
            p.source_tax_code = code.clone();
            p.taxable = *taxable;
            p.tax_rate = rate.to_string();
            p.tax_amount = None;
            out.push(p);
        }
    }
    Some(out)
}

fn build_lines_as_is(
    lines: &[LineItem],
    tax_included: bool,
    tracking: &[(String, String)],
    mapping: &Mapping,
    org: &OrgSettings,
    allow_discount: bool,
) -> Result<Built, Problem> {
    let unitdp4 = lines.iter().any(|l| {
        l.unit_price
            .as_ref()
            .and_then(|m| dec(&m.amount).ok())
            .is_some_and(|u| u.normalize().scale() > 2)
    });
    let dp = if unitdp4 { 4 } else { 2 };
    let mut out = Vec::new();
    let mut total = Decimal::ZERO;
    let mut tax_total = Decimal::ZERO;
    let mut dropped = Vec::new();
    let mut track = Vec::new();
    for (cat, opt) in tracking.iter().take(2) {
        match org.tracking_option(cat, opt) {
            Some((name, option)) => track.push(XTracking { name, option }),
            None => dropped.push(format!("{cat}={opt}")),
        }
    }
    for l in lines {
        let kind = kind_of(l);
        let bad = |e: String| Problem {
            reason: ReasonClass::Invalid,
            error: e,
            suggestions: vec![],
        };
        let qty = if l.quantity.trim().is_empty() {
            Decimal::ONE
        } else {
            dec(&l.quantity).map_err(bad)?
        };
        let unit = money(&l.unit_price).map_err(bad)?;
        let discount = money(&l.discount).map_err(bad)?;
        let account = mapping.account_for(kind, &l.source_tax_code).to_owned();
        let rate_hint = dec(&l.tax_rate).unwrap_or_default();
        let Some(tax_type) = mapping
            .tax_type_for(kind, &l.source_tax_code, l.taxable)
            .map(str::to_owned)
        else {
            return Err(Problem::mapping(
                format!(
                    "no TaxType mapped for store tax code {:?} (line {:?})",
                    l.source_tax_code, l.description
                ),
                org.suggest_tax_types(rate_hint, &l.source_tax_code),
            ));
        };
        if !org.sales_account(&account) {
            return Err(Problem::mapping(
                format!(
                    "AccountCode {account:?} for {kind:?} lines is not an active account in this organisation"
                ),
                org.suggest_accounts(kind, &account),
            ));
        }
        let Some(rate_pct) = org.revenue_rate(&tax_type) else {
            return Err(Problem::mapping(
                format!(
                    "TaxType {tax_type:?} (store code {:?}) does not exist or cannot be used on sales",
                    l.source_tax_code
                ),
                org.suggest_tax_types(rate_hint, &tax_type),
            ));
        };
        let unit_r = unit.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
        let mut line = XLine {
            description: description(l, kind),
            quantity: qty,
            unit_amount: unit_r,
            discount_amount: None,
            account_code: account,
            tax_type,
            tracking: if kind == LineKind::Rounding {
                vec![]
            } else {
                track.clone()
            },
        };
        let rate = rate_pct / Decimal::ONE_HUNDRED;
        // Each Xero line amount equals the canonical line amount (net; gross when tax is
        // included), so what is left between the totals is Xero's per-line tax rounding.
        let target = match l
            .line_total
            .as_ref()
            .filter(|m| !m.amount.trim().is_empty())
        {
            Some(m) => {
                let net = dec(&m.amount).map_err(bad)?;
                if tax_included {
                    net + money(&l.tax_amount).map_err(bad)?
                } else {
                    net
                }
            }
            None => {
                // Canonical discounts are net of tax; grossed up for a tax-inclusive line.
                let d = if tax_included {
                    let line_rate = dec(&l.tax_rate).unwrap_or(rate);
                    round2(discount * (Decimal::ONE + line_rate))
                } else {
                    discount
                };
                round2(qty * unit_r - d)
            }
        };
        let plain = round2(qty * unit_r);
        if plain != target {
            let d = plain - target;
            if d > Decimal::ZERO && allow_discount {
                line.discount_amount = Some(d);
            } else {
                // Credit notes take no discounts (and a line above its price has none to
                // give): send the line amount itself, keeping the quantity in the text.
                if qty != Decimal::ONE {
                    line.description = format!("{} x {}", qty.normalize(), line.description)
                        .chars()
                        .take(4000)
                        .collect();
                }
                line.quantity = Decimal::ONE;
                line.unit_amount = target;
            }
        }
        let computed =
            round2(line.quantity * line.unit_amount - line.discount_amount.unwrap_or_default());
        let tax = if tax_included {
            round2(computed - computed / (Decimal::ONE + rate))
        } else {
            round2(computed * rate)
        };
        total += if tax_included {
            computed
        } else {
            computed + tax
        };
        tax_total += tax;
        out.push(line);
    }
    Ok(Built {
        lines: out,
        xero_total: total,
        xero_tax: tax_total,
        unitdp4,
        dropped_tracking: dropped,
    })
}

fn rounding_line(diff: Decimal, mapping: &Mapping) -> XLine {
    XLine {
        description: "Rounding".into(),
        quantity: Decimal::ONE,
        unit_amount: diff,
        discount_amount: None,
        account_code: mapping.accounts.rounding.clone(),
        tax_type: mapping.tax.untaxed_tax_type.clone(),
        tracking: vec![],
    }
}

/// Pattern values of an order.
pub fn values<'a>(order: &'a Order, ret: &'a str) -> PatternValues<'a> {
    PatternValues {
        store: &order.store,
        number: &order.number,
        id: &order.id,
        po: &order.purchase_order_number,
        ret,
    }
}

fn tracking_of(order: &Order) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = order
        .tracking
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.sort();
    t
}

/// Writer settings and Xero facts a document depends on beyond the order and the mapping.
#[derive(Debug, Clone, Copy)]
pub struct DocOptions {
    /// Status new documents get.
    pub status: DocStatus,
    /// The contact's sales payment terms, when known.
    pub contact_terms: Option<Terms>,
    /// Due days when no terms apply.
    pub default_due_days: u32,
    /// Tracking values the org lacks: left off, or the order goes to review.
    pub unknown_tracking: UnknownTracking,
}

impl Default for DocOptions {
    fn default() -> Self {
        Self {
            status: DocStatus::Authorised,
            contact_terms: None,
            default_due_days: 0,
            unknown_tracking: UnknownTracking::Omit,
        }
    }
}

/// Builds the invoice for an order snapshot (AUTHORISED, due on the order's due date, else by
/// the org's terms, else on the invoice date).
pub fn invoice(
    order: &Order,
    contact_id: &str,
    mapping: &Mapping,
    org: &OrgSettings,
) -> Result<InvoiceDoc, Problem> {
    invoice_with(order, contact_id, mapping, org, &DocOptions::default())
}

/// Builds the invoice for an order snapshot with the writer's settings.
pub fn invoice_with(
    order: &Order,
    contact_id: &str,
    mapping: &Mapping,
    org: &OrgSettings,
    opts: &DocOptions,
) -> Result<InvoiceDoc, Problem> {
    if !org.currencies.iter().any(|c| c == &order.currency) && !order.currency.is_empty() {
        return Err(Problem {
            reason: ReasonClass::Mapping,
            error: format!(
                "Organisation is not subscribed to currency {}",
                order.currency
            ),
            suggestions: vec![Suggestion {
                field: "CurrencyCode".into(),
                current_value: order.currency.clone(),
                suggested_value: org.base_currency.clone(),
                score: 0.5,
                reason: "enable the currency in Xero, or convert to the base currency".into(),
            }],
        });
    }
    let tracking = tracking_of(order);
    if opts.unknown_tracking == UnknownTracking::Review {
        // The same (at most two) values the lines would carry.
        for (cat, opt) in tracking.iter().take(2) {
            if org.tracking_option(cat, opt).is_none() {
                let what = if org
                    .tracking
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(cat))
                {
                    format!("{opt:?} is not an active option of tracking category {cat:?}")
                } else {
                    format!("tracking category {cat:?} (value {opt:?}) is not an active category")
                };
                return Err(Problem::mapping(
                    format!("{what} in this organisation (WRITER_UNKNOWN_TRACKING=review)"),
                    org.suggest_tracking(cat, opt),
                ));
            }
        }
    }
    let built = build_lines(
        &order.lines,
        order.tax_included,
        &tracking,
        mapping,
        org,
        true,
    )?;
    let order_total = order
        .totals
        .as_ref()
        .map(|t| money(&t.total))
        .transpose()
        .map_err(|e| Problem {
            reason: ReasonClass::Invalid,
            error: e,
            suggestions: vec![],
        })?
        .unwrap_or(built.xero_total);
    let mut lines = built.lines;
    let diff = order_total - built.xero_total;
    if !diff.is_zero() {
        if diff.abs() > MAX_ROUNDING {
            return Err(Problem {
                reason: ReasonClass::Policy,
                error: format!(
                    "Xero would total {} but the order totals {order_total}; too far apart for a rounding line",
                    built.xero_total
                ),
                suggestions: vec![],
            });
        }
        lines.push(rounding_line(diff, mapping));
    }
    let v = values(order, "");
    let number = mapping.invoice_number(&v);
    let attrs: std::collections::BTreeMap<String, String> = order
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut reference = mapping.invoice_reference(&v, &attrs);
    if let Some(fx) = order.attributes.get(FX_ATTRIBUTE) {
        // The original amount and currency stay visible on the invoice.
        reference = format!("{reference} ({fx})").trim().to_owned();
    }
    let date = day_in(org.timezone, &order.created_at)
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&org.timezone).date_naive());
    // The store's own due date wins; else the contact's terms, the org's, the configured days.
    let own_due = day_in(org.timezone, &order.due_date).filter(|d| *d >= date);
    let due = own_due.unwrap_or_else(|| {
        crate::terms::due_date(
            date,
            opts.contact_terms,
            org.sales_terms,
            opts.default_due_days,
        )
    });
    let doc = XDocument {
        kind: "ACCREC".into(),
        invoice_id: None,
        contact: XContactRef {
            contact_id: contact_id.to_owned(),
        },
        invoice_number: Some(number.clone()),
        credit_note_number: None,
        reference,
        date: date.to_string(),
        due_date: Some(due.to_string()),
        line_amount_types: if order.tax_included {
            "Inclusive"
        } else {
            "Exclusive"
        }
        .into(),
        status: opts.status.as_xero().into(),
        line_items: lines,
        currency_code: (!order.currency.is_empty()).then(|| order.currency.clone()),
    };
    // The hash stands for the order's content, not the writer's settings: a new status or terms
    // setting (or terms changed in Xero) does not make every known invoice look changed (which,
    // once paid, would send it to review). It is computed as before those settings existed.
    let mut canonical = doc.clone();
    canonical.status = DocStatus::Authorised.as_xero().into();
    canonical.due_date = Some(own_due.unwrap_or(date).to_string());
    let hash = ledgerline_xero_client::hex(&Sha256::digest(
        serde_json::to_vec(&canonical).unwrap_or_default(),
    ));
    Ok(InvoiceDoc {
        doc,
        number,
        hash,
        unitdp4: built.unitdp4,
        total: order_total,
        dropped_tracking: built.dropped_tracking,
    })
}

/// A credit note ready to send.
#[derive(Debug, Clone)]
pub struct CreditDoc {
    /// The element.
    pub doc: XDocument,
    /// CreditNoteNumber.
    pub number: String,
    /// Its total (the refund amount).
    pub total: Decimal,
    /// Needs `unitdp=4`.
    pub unitdp4: bool,
}

/// Builds the (AUTHORISED) credit note for a refund.
pub fn credit_note(
    ev: &RefundEvent,
    store: &str,
    contact_id: &str,
    mapping: &Mapping,
    org: &OrgSettings,
) -> Result<CreditDoc, Problem> {
    credit_note_with(ev, store, contact_id, mapping, org, DocStatus::Authorised)
}

/// Builds the credit note for a refund with the configured status.
pub fn credit_note_with(
    ev: &RefundEvent,
    store: &str,
    contact_id: &str,
    mapping: &Mapping,
    org: &OrgSettings,
    status: DocStatus,
) -> Result<CreditDoc, Problem> {
    let refund = ev.refund.clone().unwrap_or_default();
    let invalid = |e: String| Problem {
        reason: ReasonClass::Invalid,
        error: e,
        suggestions: vec![],
    };
    let amount = money(&refund.amount).map_err(invalid)?;
    let lines_src: Vec<LineItem> = if refund.lines.is_empty() {
        let code = mapping.tax.default_code.clone();
        let rate = mapping.tax_code(&code).map(|c| c.rate).unwrap_or_default();
        let net = if ev.tax_included {
            amount
        } else {
            round2(amount / (Decimal::ONE + rate))
        };
        vec![LineItem {
            kind: LineKind::Product as i32,
            description: format!("Refund {}", refund.return_key),
            quantity: "1".into(),
            unit_price: Some(ledgerline_contract::v1::Money {
                amount: net.to_string(),
                currency: ev.currency.clone(),
            }),
            source_tax_code: code,
            taxable: true,
            ..Default::default()
        }]
    } else {
        refund.lines.clone()
    };
    let built = build_lines(&lines_src, ev.tax_included, &[], mapping, org, false)?;
    let mut lines = built.lines;
    let diff = amount - built.xero_total;
    if !diff.is_zero() {
        if diff.abs() > MAX_ROUNDING {
            return Err(Problem {
                reason: ReasonClass::Policy,
                error: format!(
                    "Xero would total {} but the refund is {amount} (its lines: net {}, tax {}; its subtotal {}, tax {}); too far apart for a rounding line",
                    built.xero_total,
                    lines_src
                        .iter()
                        .map(|l| money(&l.line_total).unwrap_or_default())
                        .sum::<Decimal>(),
                    lines_src
                        .iter()
                        .map(|l| money(&l.tax_amount).unwrap_or_default())
                        .sum::<Decimal>(),
                    money(&refund.subtotal).unwrap_or_default(),
                    money(&refund.tax).unwrap_or_default(),
                ),
                suggestions: vec![],
            });
        }
        lines.push(rounding_line(diff, mapping));
    }
    let ret = if refund.return_key.is_empty() {
        refund.id.clone()
    } else {
        refund.return_key.clone()
    };
    let v = PatternValues {
        store,
        number: &ev.order_number,
        id: &ev.order_id,
        po: "",
        ret: &ret,
    };
    let number = mapping.credit_note_number(&v);
    let date = day_in(org.timezone, &refund.refunded_at)
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&org.timezone).date_naive());
    let doc = XDocument {
        kind: "ACCRECCREDIT".into(),
        invoice_id: None,
        contact: XContactRef {
            contact_id: contact_id.to_owned(),
        },
        invoice_number: None,
        credit_note_number: Some(number.clone()),
        reference: format!("{} {}", ev.order_number, ret),
        date: date.to_string(),
        due_date: None,
        line_amount_types: if ev.tax_included {
            "Inclusive"
        } else {
            "Exclusive"
        }
        .into(),
        status: status.as_xero().into(),
        line_items: lines,
        currency_code: (!ev.currency.is_empty()).then(|| ev.currency.clone()),
    };
    Ok(CreditDoc {
        doc,
        number,
        total: amount,
        unitdp4: built.unitdp4,
    })
}

/// Order attribute holding the original currency, total and rate of a converted order.
pub const FX_ATTRIBUTE: &str = "ledgerline.fx";

fn convert_money(
    m: &mut Option<ledgerline_contract::v1::Money>,
    base: &str,
    rate: Decimal,
    dp: u32,
) {
    if let Some(m) = m.as_mut()
        && let Ok(v) = dec(&m.amount)
    {
        m.amount = (v * rate)
            .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
            .to_string();
        m.currency = base.to_owned();
    }
}

fn convert_line(l: &mut LineItem, base: &str, rate: Decimal) {
    convert_money(&mut l.unit_price, base, rate, 4);
    convert_money(&mut l.discount, base, rate, 2);
    convert_money(&mut l.tax_amount, base, rate, 2);
    convert_money(&mut l.line_total, base, rate, 2);
}

/// An order in a currency the org lacks, converted to `base` at `rate` (base units per unit);
/// the original total, currency and rate are kept for the Reference.
pub fn convert_order(order: &Order, base: &str, rate: Decimal) -> Order {
    let mut o = order.clone();
    let original = o
        .totals
        .as_ref()
        .and_then(|t| t.total.as_ref())
        .map(|m| m.amount.clone())
        .unwrap_or_default();
    o.attributes.insert(
        FX_ATTRIBUTE.to_owned(),
        format!("{} {original} @ {}", order.currency, rate.normalize()),
    );
    o.currency = base.to_owned();
    o.lines.iter_mut().for_each(|l| convert_line(l, base, rate));
    if let Some(t) = o.totals.as_mut() {
        for m in [
            &mut t.subtotal,
            &mut t.shipping,
            &mut t.handling,
            &mut t.fees,
            &mut t.discounts,
            &mut t.tax,
            &mut t.total,
        ] {
            convert_money(m, base, rate, 2);
        }
    }
    for p in o.payments.iter_mut() {
        convert_money(&mut p.amount, base, rate, 2);
    }
    o
}

/// A refund of a converted order, converted the same way.
pub fn convert_refund(ev: &RefundEvent, base: &str, rate: Decimal) -> RefundEvent {
    let mut e = ev.clone();
    e.currency = base.to_owned();
    if let Some(r) = e.refund.as_mut() {
        convert_money(&mut r.amount, base, rate, 2);
        convert_money(&mut r.subtotal, base, rate, 2);
        convert_money(&mut r.tax, base, rate, 2);
        r.lines.iter_mut().for_each(|l| convert_line(l, base, rate));
    }
    e
}

/// The Reference a payment carries, so it can be found again after an uncertain outcome.
pub fn payment_reference(invoice_number: &str, payment_id: &str) -> String {
    format!("{invoice_number} {payment_id}")
}

/// A payment on an invoice.
pub fn payment(
    invoice_id: &str,
    account: &str,
    date: NaiveDate,
    amount: Decimal,
    reference: &str,
) -> XPayment {
    XPayment {
        invoice: Some(send::InvoiceRef {
            invoice_id: invoice_id.to_owned(),
        }),
        credit_note: None,
        account: send::AccountRef {
            code: account.to_owned(),
        },
        date: date.to_string(),
        amount,
        reference: reference.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_exact_json_numbers() {
        let p = payment(
            "i",
            "090",
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            dec("39.1304").unwrap(),
            "r",
        );
        let s = serde_json::to_string(&p).unwrap();
        assert!(s.contains(r#""Amount":39.1304"#), "{s}");
    }

    #[test]
    fn the_content_hash_ignores_status_and_terms_settings() {
        use ledgerline_contract::v1::{LineItem, LineKind, Money};
        let m = |a: &str| {
            Some(Money {
                amount: a.into(),
                currency: "NZD".into(),
            })
        };
        let order = Order {
            id: "o1".into(),
            number: "SO-1".into(),
            store: "main".into(),
            currency: "NZD".into(),
            created_at: "2026-11-20".into(),
            lines: vec![LineItem {
                kind: LineKind::Product as i32,
                description: "Widget".into(),
                quantity: "1".into(),
                unit_price: m("10.00"),
                line_total: m("10.00"),
                source_tax_code: "GST0".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mapping = ledgerline_mapping::Effective::defaults().mapping;
        let org = OrgSettings {
            accounts: vec![crate::org::Account {
                code: "200".into(),
                name: "Sales".into(),
                kind: "REVENUE".into(),
                class: "REVENUE".into(),
                active: true,
                payments: false,
            }],
            tax_rates: ["NONE", "ZERORATED", "OUTPUT2"]
                .iter()
                .map(|t| crate::org::TaxRate {
                    tax_type: (*t).into(),
                    name: (*t).into(),
                    rate: Decimal::ZERO,
                    revenue: true,
                })
                .collect(),
            tracking: vec![],
            currencies: vec!["NZD".into()],
            base_currency: "NZD".into(),
            timezone: chrono_tz::Pacific::Auckland,
            sales_terms: None,
            lock_date: None,
            fetched: std::time::Instant::now(),
        };
        let plain = invoice(&order, "c", &mapping, &org).expect("builds");
        let opts = DocOptions {
            status: DocStatus::Draft,
            contact_terms: Some(Terms {
                day: 20,
                kind: crate::terms::TermKind::OfFollowingMonth,
            }),
            default_due_days: 7,
            ..Default::default()
        };
        let set = invoice_with(&order, "c", &mapping, &org, &opts).expect("builds");
        assert_eq!(set.doc.status, "DRAFT");
        assert_eq!(set.doc.due_date.as_deref(), Some("2026-12-20"));
        assert_eq!(plain.doc.due_date.as_deref(), Some("2026-11-20"));
        assert_eq!(plain.hash, set.hash);
        let mut due = order.clone();
        due.due_date = "2026-11-30".into();
        let own = invoice_with(&due, "c", &mapping, &org, &opts).expect("builds");
        assert_eq!(own.doc.due_date.as_deref(), Some("2026-11-30"));
        assert_ne!(own.hash, set.hash, "the store's own due date is content");
    }

    #[test]
    fn dates_follow_the_org_timezone() {
        let d = day_in(chrono_tz::Pacific::Auckland, "2026-03-01T20:00:00Z").unwrap();
        assert_eq!(d.to_string(), "2026-03-02");
        assert_eq!(
            day_in(chrono_tz::Pacific::Auckland, "2026-03-01")
                .unwrap()
                .to_string(),
            "2026-03-01"
        );
    }
}
