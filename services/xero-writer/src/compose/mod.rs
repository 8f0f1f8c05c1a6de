//! Canonical orders and refunds → Xero request elements, checked against the org's settings
//! before any call is spent.
//!
//! Totals: Xero rounds tax per line, so its total can differ from the store's by a cent or two;
//! an explicit rounding line to the mapping's rounding account makes Xero's total equal the
//! order's to the cent.

mod fx;
mod lines;

pub use fx::{FX_ATTRIBUTE, convert_order, convert_refund};
use lines::{MAX_ROUNDING, build_lines, rounding_line};

use crate::config::{DocStatus, UnknownTracking};
use crate::org::OrgSettings;
use crate::terms::Terms;
use chrono::{DateTime, NaiveDate};
use ledgerline_contract::v1::{
    Fault, LineItem, LineKind, Order, ReasonClass, RefundEvent, Suggestion,
};
use ledgerline_mapping::{Mapping, PatternValues};
use ledgerline_platform::dead_letter::fault;
use ledgerline_xero_client::model::send;
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// Why a document cannot be written as it stands (goes to the review queue).
#[derive(Debug, Clone)]
pub struct Problem {
    /// Dead-letter class.
    pub reason: ReasonClass,
    /// What is wrong.
    pub error: String,
    /// Ranked fixes.
    pub suggestions: Vec<Suggestion>,
    /// What exactly is at fault (code, field, value), which the review queue groups on.
    /// Boxed: it is rare, and `Problem` is every compose step's error.
    pub fault: Option<Box<Fault>>,
}

impl Problem {
    fn mapping(fault: Option<Fault>, error: String, suggestions: Vec<Suggestion>) -> Self {
        Self {
            reason: ReasonClass::Mapping,
            error,
            suggestions,
            fault: fault.map(Box::new),
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
    /// The rounding-adjustment line's amount (zero: none), for the reconciliation report.
    pub rounding: Decimal,
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

fn tracking_of(order: &Order, mapping: &Mapping) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = order
        .tracking
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), mapping.tracking_option(k, v).to_owned()))
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
                rule: String::new(),
            }],
            fault: fault("currency_not_subscribed", "CurrencyCode", &order.currency).map(Box::new),
        });
    }
    let tracking = tracking_of(order, mapping);
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
                    fault("unknown_tracking", &format!("Tracking.{cat}"), opt),
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
            fault: None,
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
                fault: None,
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
        rounding: diff,
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
        fault: None,
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
                fault: None,
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
