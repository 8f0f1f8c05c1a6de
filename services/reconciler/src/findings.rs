//! What can be wrong with an order, decided from its view alone (pure, table-tested): the
//! kinds, how much each matters, what the reconciler does about each by default, and the
//! evidence from both sides.

use crate::view::OrderView;
use ledgerline_contract::v1::FindingSeverity;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::time::Duration;

/// A kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The store has the order; Xero has no invoice for it after the SLA.
    NoInvoice,
    /// Xero's invoice total differs from the store's, to the cent.
    TotalDiffers,
    /// Paid in the store, not paid in Xero after the SLA.
    NotPaid,
    /// Voided in the store, a live invoice in Xero after the SLA.
    VoidMissing,
    /// Refunded in the store, not credited in Xero after the SLA.
    RefundMissing,
    /// More than one live invoice for one order.
    DuplicateDocuments,
    /// An invoice changed, voided or deleted directly in Xero.
    ChangedInXero,
    /// The order's contact was archived in Xero while the order is open.
    ContactArchived,
    /// A payment in Xero on the order's invoice that the store has no payment for.
    UnknownPayment,
    /// The store has an order (or a version) the pipeline never saw.
    UnseenOrder,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::NoInvoice,
        Kind::TotalDiffers,
        Kind::NotPaid,
        Kind::VoidMissing,
        Kind::RefundMissing,
        Kind::DuplicateDocuments,
        Kind::ChangedInXero,
        Kind::ContactArchived,
        Kind::UnknownPayment,
        Kind::UnseenOrder,
    ];

    /// Its name in subjects, metrics and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NoInvoice => "no_invoice",
            Kind::TotalDiffers => "total_differs",
            Kind::NotPaid => "not_paid",
            Kind::VoidMissing => "void_missing",
            Kind::RefundMissing => "refund_missing",
            Kind::DuplicateDocuments => "duplicate_documents",
            Kind::ChangedInXero => "changed_in_xero",
            Kind::ContactArchived => "contact_archived",
            Kind::UnknownPayment => "unknown_payment",
            Kind::UnseenOrder => "unseen_order",
        }
    }

    /// What is done about it unless configured otherwise: what the pipeline owes Xero is
    /// repaired, what it never saw is resynced, the rest (a person's change in Xero above all)
    /// is reported.
    pub fn default_policy(self) -> Policy {
        match self {
            Kind::NoInvoice | Kind::NotPaid | Kind::VoidMissing | Kind::RefundMissing => {
                Policy::Repair
            }
            Kind::UnseenOrder => Policy::Resync,
            _ => Policy::Report,
        }
    }

    /// How much it matters.
    pub fn severity(self) -> FindingSeverity {
        match self {
            Kind::TotalDiffers
            | Kind::VoidMissing
            | Kind::DuplicateDocuments
            | Kind::UnseenOrder => FindingSeverity::Critical,
            _ => FindingSeverity::Warning,
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown finding kind {s:?}: {}",
                    Kind::ALL.map(Kind::as_str).join(", ")
                )
            })
    }
}

/// What the reconciler does about a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Publish and keep the finding; a person acts.
    Report,
    /// Ask webhook-ingest to resync the order from the store's API.
    Resync,
    /// Ask the writer to check the order against Xero and converge.
    Repair,
}

impl Policy {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Report => "report",
            Policy::Resync => "resync",
            Policy::Repair => "repair",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "report" => Ok(Policy::Report),
            "resync" => Ok(Policy::Resync),
            "repair" => Ok(Policy::Repair),
            other => Err(format!("{other:?}: use report, resync or repair")),
        }
    }
}

/// How long the pipeline has before a missing write is drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slas {
    /// From the store's first event to the invoice.
    pub invoice: Duration,
    /// From a payment, void or refund in the store to the same in Xero (and for totals to
    /// agree after a change).
    pub settle: Duration,
}

/// A finding as evaluated: its kind, what it says, and each side's evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Kind.
    pub kind: Kind,
    /// In words.
    pub summary: String,
    /// The store's values.
    pub store_side: BTreeMap<String, String>,
    /// Xero's values.
    pub xero_side: BTreeMap<String, String>,
    /// What a person (or the policy) should do.
    pub suggested_action: String,
}

fn since(at: &str, now: chrono::DateTime<chrono::Utc>) -> Duration {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| {
            now.signed_duration_since(t)
                .to_std()
                .unwrap_or(Duration::ZERO)
        })
        .unwrap_or(Duration::ZERO)
}

fn map<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn money(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
}

/// The findings `view` shows at `now`.
pub fn evaluate(view: &OrderView, now: chrono::DateTime<chrono::Utc>, slas: Slas) -> Vec<Draft> {
    let mut out = Vec::new();
    let live = view.live_invoices();
    let store = view.store_side.as_ref();
    let number = &view.order_number;
    if live.len() > 1 {
        out.push(Draft {
            kind: Kind::DuplicateDocuments,
            summary: format!("{} live invoices in Xero for order {number}", live.len()),
            store_side: map([("order", number.clone())]),
            xero_side: map([(
                "invoices",
                live.iter()
                    .map(|(_, d)| d.number.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            )]),
            suggested_action:
                "void the extra invoice in Xero (the one the store's order does not name)".into(),
        });
    }
    for (id, d) in &view.xero.invoices {
        let (Some(w), Some(o)) = (&d.written, d.observed_since_write(&view.xero.last_write_at))
        else {
            continue;
        };
        let gone = |s: &str| s == "VOIDED" || s == "DELETED";
        let what = if gone(&o.status) && !gone(&w.status) {
            Some(format!("{} in Xero", o.status.to_ascii_lowercase()))
        } else if o.total.is_some() && w.total.is_some() && o.total != w.total && !gone(&o.status) {
            Some(format!(
                "total edited in Xero from {} to {}",
                money(w.total),
                money(o.total)
            ))
        } else {
            None
        };
        if let Some(what) = what {
            out.push(Draft {
                kind: Kind::ChangedInXero,
                summary: format!("invoice {} of order {number}: {what}", d.number),
                store_side: map([("written status", w.status.clone()), ("written total", money(w.total)), ("written at", w.at.clone())]),
                xero_side: map([
                    ("invoice", id.clone()),
                    ("status", o.status.clone()),
                    ("total", money(o.total)),
                    ("updated", o.at.clone()),
                ]),
                suggested_action: "a person's change in Xero: confirm it was meant (then nothing to do), or set the policy to repair to restore the store's version".into(),
            });
        }
    }
    for (id, p) in &view.xero.payments {
        let ours = view.xero.invoices.contains_key(&p.document_id);
        if ours && !p.by_writer && p.status != "DELETED" {
            out.push(Draft {
                kind: Kind::UnknownPayment,
                summary: format!(
                    "a payment in Xero on order {number}'s invoice that the store has not recorded"
                ),
                store_side: map([(
                    "payments",
                    store
                        .map(|s| s.payments.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                )]),
                xero_side: map([("payment", id.clone()), ("amount", money(p.amount))]),
                suggested_action:
                    "check the payment in Xero (entered by hand?) and the store's record of it"
                        .into(),
            });
        }
    }
    let Some(s) = store else { return out };
    if view.xero.contact_status == "ARCHIVED" && !s.voided() && !s.fully_paid() {
        out.push(Draft {
            kind: Kind::ContactArchived,
            summary: format!("order {number} is open but its contact is archived in Xero"),
            store_side: map([("status", s.status.clone())]),
            xero_side: map([
                ("contact", view.xero.contact_id.clone()),
                ("status", view.xero.contact_status.clone()),
            ]),
            suggested_action:
                "restore the contact in Xero (or merge it back), then replay the order".into(),
        });
    }
    let settled = since(&s.changed_at, now) >= slas.settle;
    if view.xero.invoices.is_empty() {
        if !s.voided() && s.total > Decimal::ZERO && since(&s.first_seen, now) >= slas.invoice {
            out.push(Draft {
                kind: Kind::NoInvoice,
                summary: format!(
                    "order {number} ({} {}) has no invoice in Xero after {:?}",
                    s.total, s.currency, slas.invoice
                ),
                store_side: map([
                    ("version", s.version.to_string()),
                    ("status", s.status.clone()),
                    ("total", s.total.to_string()),
                    ("first seen", s.first_seen.clone()),
                ]),
                xero_side: map([("invoices", "none".into())]),
                suggested_action:
                    "check the review queue for the order; else repair (the writer writes it)"
                        .into(),
            });
        }
        return out;
    }
    if s.voided() {
        if !live.is_empty() && settled {
            out.push(Draft {
                kind: Kind::VoidMissing,
                summary: format!(
                    "order {number} was cancelled in the store but its invoice is live in Xero"
                ),
                store_side: map([
                    ("status", s.status.clone()),
                    ("version", s.version.to_string()),
                ]),
                xero_side: map([(
                    "live invoices",
                    live.iter()
                        .map(|(_, d)| d.number.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                )]),
                suggested_action: "repair (the writer voids it), or void it in Xero".into(),
            });
        }
        return out;
    }
    if let [(id, d)] = live.as_slice() {
        let cur = d.current().cloned().unwrap_or_default();
        let same_currency = cur.currency.is_empty() || cur.currency == s.currency;
        if same_currency && cur.total.is_some_and(|t| t != s.total) && settled {
            out.push(Draft {
                kind: Kind::TotalDiffers,
                summary: format!(
                    "order {number}: Xero's invoice {} totals {} but the store's order {}",
                    d.number,
                    money(cur.total),
                    s.total
                ),
                store_side: map([("total", s.total.to_string()), ("tax", s.tax.to_string()), ("currency", s.currency.clone())]),
                xero_side: map([("invoice", (*id).clone()), ("total", money(cur.total)), ("status", cur.status.clone())]),
                suggested_action: "see the report's explanation (rounding, FX); otherwise repair or correct it in Xero".into(),
            });
        }
        if s.fully_paid() && settled {
            let writer_paid: Decimal = view
                .xero
                .payments
                .values()
                .filter(|p| p.by_writer && p.status != "DELETED")
                .filter_map(|p| p.amount)
                .sum();
            // Xero's own figure if read since the writer's last write; else the writer's.
            let xero_paid = match d.observed_since_write(&view.xero.last_write_at) {
                Some(o) if o.status == "PAID" => s.amount_paid,
                Some(o) => o.amount_paid.unwrap_or_default(),
                None => writer_paid,
            };
            if xero_paid < s.amount_paid {
                out.push(Draft {
                    kind: Kind::NotPaid,
                    summary: format!(
                        "order {number} is paid in the store ({}) but Xero has {} paid on invoice {}",
                        s.amount_paid, xero_paid, d.number
                    ),
                    store_side: map([("amount paid", s.amount_paid.to_string()), ("payments", s.payments.len().to_string())]),
                    xero_side: map([("amount paid", xero_paid.to_string()), ("status", cur.status.clone())]),
                    suggested_action: "repair (the writer applies the missing payment)".into(),
                });
            }
        }
    }
    let refunded: Decimal = s.refunds.values().sum();
    if refunded > Decimal::ZERO && settled {
        let credited: Decimal = view
            .xero
            .credit_notes
            .values()
            .filter(|d| d.live())
            .filter_map(|d| d.current().and_then(|c| c.total))
            .sum();
        if credited < refunded {
            out.push(Draft {
                kind: Kind::RefundMissing,
                summary: format!(
                    "order {number}: {refunded} refunded in the store, {credited} credited in Xero"
                ),
                store_side: map([
                    ("refunded", refunded.to_string()),
                    ("refunds", s.refunds.len().to_string()),
                ]),
                xero_side: map([
                    ("credited", credited.to_string()),
                    ("credit notes", view.xero.credit_notes.len().to_string()),
                ]),
                suggested_action: "repair (the writer credits it), after checking the review queue"
                    .into(),
            });
        }
    }
    out
}
