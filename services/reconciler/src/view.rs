//! One order's two sides, as the projection keeps them: the store's (canonical snapshots from
//! ORDERS) and Xero's (the writer's facts from XERO, and what the reconciler itself read in
//! Xero from OBSERVED). Pure: applying a message changes the view and nothing else, so a
//! rebuild from the streams yields the same views.

use ledgerline_contract::v1::{
    DeadLetter, Money, OrderEvent, OrderStatus, RefundEvent, Stage, XeroDocumentKind, XeroFact,
    XeroObservation, XeroVerb,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// One order, both sides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    /// Store.
    pub store: String,
    /// The store's order id.
    pub order_id: String,
    /// The store's order number.
    pub order_number: String,
    /// What the store says (the newest snapshot).
    pub store_side: Option<StoreSide>,
    /// What Xero holds for it.
    pub xero: XeroSide,
    /// Findings open on it, by kind.
    pub findings: BTreeMap<String, OpenFinding>,
    /// The store's version the books last agreed with (0: not yet): Xero holds what that
    /// version says, to the cent, and nothing is open.
    #[serde(default)]
    pub tied_out_version: u64,
}

/// The store's side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreSide {
    /// Snapshot version.
    pub version: u64,
    /// Canonical status (`confirmed`, `paid`, `cancelled`, ...).
    pub status: String,
    /// ISO 4217.
    pub currency: String,
    /// The order's total.
    pub total: Decimal,
    /// Its tax.
    pub tax: Decimal,
    /// Received so far.
    pub amount_paid: Decimal,
    /// Payment ids and amounts.
    pub payments: BTreeMap<String, Decimal>,
    /// Refund ids and amounts.
    pub refunds: BTreeMap<String, Decimal>,
    /// When the store first told us about the order (RFC 3339): the SLAs count from here.
    pub first_seen: String,
    /// When the latest snapshot, payment, void or refund arrived.
    pub changed_at: String,
    /// When the order was placed (the store's `created_at`, RFC 3339): its day in the report.
    #[serde(default)]
    pub created_at: String,
    /// Shipping, net of tax.
    #[serde(default)]
    pub shipping: Decimal,
    /// Discounts (zero or negative).
    #[serde(default)]
    pub discounts: Decimal,
    /// The version at which a figure Xero follows last changed (totals, currency, payments,
    /// cancelled): a later version that only ships or completes the order asks nothing of
    /// Xero, and the writer writes nothing for it.
    #[serde(default)]
    pub figures_version: u64,
}

impl StoreSide {
    /// What Xero must follow, for telling a change of figures from one of fulfilment.
    fn figures(&self) -> impl PartialEq + use<> {
        (
            self.currency.clone(),
            [
                self.total,
                self.tax,
                self.shipping,
                self.discounts,
                self.amount_paid,
            ],
            self.payments.clone(),
            self.voided(),
        )
    }

    /// The version Xero must have been written at (see `figures_version`; older views: the
    /// latest version).
    pub fn due_version(&self) -> u64 {
        if self.figures_version == 0 {
            self.version
        } else {
            self.figures_version
        }
    }

    /// Cancelled in the store.
    pub fn voided(&self) -> bool {
        self.status == "cancelled"
    }

    /// Paid in full.
    pub fn fully_paid(&self) -> bool {
        !self.voided() && self.total > Decimal::ZERO && self.amount_paid >= self.total
    }
}

/// Xero's side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XeroSide {
    /// The tenant the order was written to.
    pub tenant: String,
    /// Invoices by InvoiceID.
    pub invoices: BTreeMap<String, Doc>,
    /// Credit notes by CreditNoteID.
    pub credit_notes: BTreeMap<String, Doc>,
    /// Payments by PaymentID.
    pub payments: BTreeMap<String, PaymentSeen>,
    /// The order's contact in Xero.
    pub contact_id: String,
    /// The contact's status as last read (ARCHIVED, ...).
    pub contact_status: String,
    /// When the writer last wrote anything of the order (its facts' `written_at`): a webhook
    /// of that moment is the writer's own write, and needs no lookup.
    #[serde(default)]
    pub last_write_at: String,
    /// The store's version the writer last wrote (the highest `order_version` of its facts).
    #[serde(default)]
    pub written_version: u64,
    /// The order's latest dead letter, while the order waits in the review queue.
    #[serde(default)]
    pub review: Option<Review>,
}

/// An order held in the review queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// The dead letter's id (the queue's entry).
    pub entry: String,
    /// Why, in the stage's words.
    pub error: String,
    /// Stage (`normalizer`, `xero_writer`).
    pub stage: String,
    /// When it failed.
    pub at: String,
    /// When the order was placed, as the dead letter says (held before it was normalised).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub placed_at: String,
}

/// A document: what the writer wrote, and what the reconciler last read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// Its number.
    pub number: String,
    /// What the writer last wrote (from its facts).
    pub written: Option<DocState>,
    /// What Xero showed when last read.
    pub observed: Option<DocState>,
    /// The writer's rounding-adjustment line on it (facts only).
    #[serde(default)]
    pub rounding: Option<Decimal>,
    /// Set when the writer converted the order into the base currency: the store's currency
    /// and the rate (base units per store unit).
    #[serde(default)]
    pub fx: Option<(String, Decimal)>,
}

/// A document's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocState {
    /// Status.
    pub status: String,
    /// Total.
    pub total: Option<Decimal>,
    /// Still due.
    pub amount_due: Option<Decimal>,
    /// Paid so far (observations only).
    pub amount_paid: Option<Decimal>,
    /// Currency.
    pub currency: String,
    /// When (the writer's `written_at`, or Xero's `UpdatedDateUTC`), RFC 3339.
    pub at: String,
    /// Payments Xero holds on it (observations only).
    pub payment_ids: Vec<String>,
    /// TotalTax.
    #[serde(default)]
    pub tax: Option<Decimal>,
    /// Xero's CurrencyRate (units of the document's currency per base unit).
    #[serde(default)]
    pub rate: Option<Decimal>,
}

impl Doc {
    /// The state to believe: the later of Xero's as last read and what the writer wrote.
    pub fn current(&self) -> Option<&DocState> {
        match (&self.observed, &self.written) {
            (Some(o), Some(w)) if normalise(&w.at) > normalise(&o.at) => Some(w),
            (Some(o), _) => Some(o),
            (None, w) => w.as_ref(),
        }
    }

    /// Xero's state as last read, unless the writer wrote the document since.
    pub fn observed_since_write(&self, last_write_at: &str) -> Option<&DocState> {
        self.observed
            .as_ref()
            .filter(|o| normalise(&o.at) >= normalise(last_write_at))
    }

    /// Not voided or deleted.
    pub fn live(&self) -> bool {
        self.current()
            .is_some_and(|s| s.status != "VOIDED" && s.status != "DELETED")
    }
}

/// A payment in Xero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentSeen {
    /// The invoice (or credit note) it pays.
    pub document_id: String,
    /// Amount.
    pub amount: Option<Decimal>,
    /// The writer recorded it (a fact).
    pub by_writer: bool,
    /// Xero's status as last read (AUTHORISED, DELETED).
    pub status: String,
    /// The account it was paid into (or, for a refund, paid from).
    #[serde(default)]
    pub account: String,
    /// The writer's fact's number: the invoice's number for a payment, the return's key for
    /// a refund.
    #[serde(default)]
    pub number: String,
}

/// A finding open on an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenFinding {
    /// When it opened.
    pub opened_at: String,
    /// What was done about it.
    pub action: String,
    /// Its summary when it opened.
    pub summary: String,
    /// For `unseen_order`: the store's version the pipeline has not seen.
    #[serde(default)]
    pub version: u64,
}

fn rate(text: &str) -> Option<Decimal> {
    Decimal::from_str(text.trim()).ok().filter(|r| !r.is_zero())
}

fn dec(m: &Option<Money>) -> Option<Decimal> {
    m.as_ref()
        .and_then(|m| Decimal::from_str(m.amount.trim()).ok())
}

fn status_name(s: i32) -> String {
    OrderStatus::try_from(s)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("ORDER_STATUS_")
        .to_ascii_lowercase()
}

impl OrderView {
    /// A new view of `store`'s order `order_id`.
    pub fn new(store: &str, order_id: &str) -> Self {
        Self {
            store: store.to_owned(),
            order_id: order_id.to_owned(),
            ..Default::default()
        }
    }

    /// The store's snapshot `e`, arrived at `at`; an older version than held is ignored.
    pub fn apply_order(&mut self, e: &OrderEvent, at: &str) -> bool {
        let Some(o) = &e.order else { return false };
        if self.order_number.is_empty() {
            self.order_number = o.number.clone();
        }
        let side = self.store_side.get_or_insert_with(|| StoreSide {
            first_seen: at.to_owned(),
            ..Default::default()
        });
        if o.version < side.version {
            return false;
        }
        let totals = o.totals.as_ref();
        let before = side.figures();
        side.version = o.version;
        side.status = status_name(o.status);
        side.currency = o.currency.clone();
        side.total = totals.and_then(|t| dec(&t.total)).unwrap_or_default();
        side.tax = totals.and_then(|t| dec(&t.tax)).unwrap_or_default();
        side.shipping = totals.and_then(|t| dec(&t.shipping)).unwrap_or_default();
        side.discounts = totals.and_then(|t| dec(&t.discounts)).unwrap_or_default();
        side.created_at = o.created_at.clone();
        side.amount_paid = dec(&o.amount_paid).unwrap_or_default();
        side.payments = o
            .payments
            .iter()
            .map(|p| (p.id.clone(), dec(&p.amount).unwrap_or_default()))
            .collect();
        // Refunds arrive as their own events; the snapshot's list is merged, not replaced.
        for r in &o.refunds {
            side.refunds
                .insert(r.id.clone(), dec(&r.amount).unwrap_or_default());
        }
        side.changed_at = at.to_owned();
        if side.figures_version == 0 || side.figures() != before {
            side.figures_version = side.version;
        }
        true
    }

    /// A refund of the order.
    pub fn apply_refund(&mut self, e: &RefundEvent, at: &str) -> bool {
        if self.order_number.is_empty() {
            self.order_number = e.order_number.clone();
        }
        let Some(r) = &e.refund else { return false };
        let side = self.store_side.get_or_insert_with(|| StoreSide {
            first_seen: at.to_owned(),
            ..Default::default()
        });
        let amount = dec(&r.amount).unwrap_or_default();
        if side.refunds.get(&r.id) == Some(&amount) {
            return false;
        }
        side.refunds.insert(r.id.clone(), amount);
        side.changed_at = at.to_owned();
        true
    }

    /// A write the writer reports.
    pub fn apply_fact(&mut self, f: &XeroFact) -> bool {
        if self.xero.tenant.is_empty() {
            self.xero.tenant = f.tenant_id.clone();
        }
        let at = normalise(&f.written_at);
        if at > self.xero.last_write_at {
            self.xero.last_write_at = at;
        }
        let mut changed = false;
        if f.kind() != XeroDocumentKind::Contact && f.order_version > self.xero.written_version {
            self.xero.written_version = f.order_version;
            changed = true;
        }
        // A document written for the store's version ends its wait in the review queue.
        if self.xero.review.is_some()
            && matches!(
                f.kind(),
                XeroDocumentKind::Invoice | XeroDocumentKind::CreditNote
            )
            && self
                .store_side
                .as_ref()
                .is_none_or(|s| f.order_version >= s.version)
        {
            self.xero.review = None;
            changed = true;
        }
        let state = |status: &str| DocState {
            status: status.to_owned(),
            total: dec(&f.total),
            amount_due: dec(&f.amount_due),
            amount_paid: None,
            currency: f
                .total
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default(),
            at: f.written_at.clone(),
            payment_ids: vec![],
            tax: dec(&f.tax),
            rate: rate(&f.currency_rate),
        };
        let status = match f.verb() {
            XeroVerb::Voided => "VOIDED".to_owned(),
            XeroVerb::Deleted => "DELETED".to_owned(),
            _ => f.status.clone(),
        };
        match f.kind() {
            XeroDocumentKind::Invoice | XeroDocumentKind::CreditNote => {
                let docs = if f.kind() == XeroDocumentKind::Invoice {
                    &mut self.xero.invoices
                } else {
                    &mut self.xero.credit_notes
                };
                let d = docs.entry(f.xero_id.clone()).or_default();
                d.number = f.number.clone();
                if f.verb() != XeroVerb::Voided && f.verb() != XeroVerb::Deleted {
                    d.rounding = dec(&f.rounding);
                    d.fx = rate(&f.fx_rate).map(|r| (f.fx_from.clone(), r));
                }
                let new = state(&status);
                if d.written.as_ref() == Some(&new) {
                    return changed;
                }
                d.written = Some(new);
                true
            }
            XeroDocumentKind::Payment => {
                let p = self.xero.payments.entry(f.xero_id.clone()).or_default();
                let before = p.clone();
                p.by_writer = true;
                if p.amount.is_none() {
                    p.amount = dec(&f.total);
                }
                if p.account.is_empty() {
                    p.account = f.account_code.clone();
                }
                if p.number.is_empty() {
                    p.number = f.number.clone();
                }
                if f.verb() == XeroVerb::Deleted {
                    p.status = "DELETED".into();
                }
                *p != before || changed
            }
            XeroDocumentKind::Contact => {
                let changed = self.xero.contact_id != f.xero_id;
                self.xero.contact_id = f.xero_id.clone();
                changed
            }
            _ => changed,
        }
    }

    /// A dead letter about the order: it waits in the review queue until a document is written
    /// for it. Returns whether the view changed.
    pub fn apply_dead_letter(&mut self, d: &DeadLetter) -> bool {
        let stage = Stage::try_from(d.stage)
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("STAGE_")
            .to_ascii_lowercase();
        let review = Review {
            entry: d.id.clone(),
            error: d.error.clone(),
            stage,
            at: d.failed_at.clone(),
            placed_at: d.occurred_at.clone(),
        };
        let numbered = self.order_number.is_empty() && !d.order_number.is_empty();
        if numbered {
            self.order_number = d.order_number.clone();
        }
        if self.xero.review.as_ref() == Some(&review) {
            return numbered;
        }
        self.xero.review = Some(review);
        true
    }

    /// What the reconciler read in Xero. An older read than held is ignored.
    pub fn apply_observation(&mut self, o: &XeroObservation) -> bool {
        if self.xero.tenant.is_empty() {
            self.xero.tenant = o.tenant_id.clone();
        }
        let state = DocState {
            status: o.status.clone(),
            total: dec(&o.total),
            amount_due: dec(&o.amount_due),
            amount_paid: dec(&o.amount_paid),
            currency: o
                .total
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default(),
            at: o.updated_utc.clone(),
            payment_ids: o.payment_ids.clone(),
            tax: dec(&o.tax),
            rate: rate(&o.currency_rate),
        };
        match o.kind() {
            XeroDocumentKind::Invoice | XeroDocumentKind::CreditNote => {
                let docs = if o.kind() == XeroDocumentKind::Invoice {
                    &mut self.xero.invoices
                } else {
                    &mut self.xero.credit_notes
                };
                let d = docs.entry(o.xero_id.clone()).or_default();
                if d.number.is_empty() {
                    d.number = o.number.clone();
                }
                if d.observed
                    .as_ref()
                    .is_some_and(|old| old.at > state.at || *old == state)
                {
                    return false;
                }
                // Payments the invoice shows are payments in Xero; one it showed before and
                // shows no longer was deleted.
                for (id, p) in self.xero.payments.iter_mut() {
                    if p.document_id == o.xero_id && !state.payment_ids.contains(id) {
                        p.status = "DELETED".into();
                    }
                }
                for id in &state.payment_ids {
                    let p = self.xero.payments.entry(id.clone()).or_default();
                    if p.document_id.is_empty() {
                        p.document_id = o.xero_id.clone();
                    }
                    p.status = "AUTHORISED".into();
                }
                d.observed = Some(state);
                true
            }
            XeroDocumentKind::Payment => {
                let p = self.xero.payments.entry(o.xero_id.clone()).or_default();
                let before = p.clone();
                p.document_id = o.document_id.clone();
                p.amount = dec(&o.total).or(p.amount);
                p.status = o.status.clone();
                if !o.account_code.is_empty() {
                    p.account = o.account_code.clone();
                }
                *p != before
            }
            XeroDocumentKind::Contact => {
                let changed = self.xero.contact_status != o.status;
                self.xero.contact_status = o.status.clone();
                changed
            }
            _ => false,
        }
    }

    /// Invoices not voided or deleted.
    pub fn live_invoices(&self) -> Vec<(&String, &Doc)> {
        self.xero
            .invoices
            .iter()
            .filter(|(_, d)| d.live())
            .collect()
    }

    /// Whether Xero agrees with the store's side now: cancelled and nothing live; or one
    /// live invoice of the store's total, paid as far as the store was paid (by the writer's
    /// payments or Xero's PAID), every refund credited; and no finding open.
    pub fn ties_out(&self) -> bool {
        let Some(s) = &self.store_side else {
            return false;
        };
        if !self.findings.is_empty() {
            return false;
        }
        let live = self.live_invoices();
        if s.voided() {
            return live.is_empty();
        }
        let [(_, d)] = live.as_slice() else {
            return false;
        };
        let Some(cur) = d.current() else {
            return false;
        };
        if cur.total != Some(s.total) {
            return false;
        }
        let paid: Decimal = self
            .xero
            .payments
            .values()
            .filter(|p| p.by_writer && p.status != "DELETED")
            .filter_map(|p| p.amount)
            .sum();
        if s.amount_paid > Decimal::ZERO && cur.status != "PAID" && paid < s.amount_paid {
            return false;
        }
        let refunded: Decimal = s.refunds.values().sum();
        let credited: Decimal = self
            .xero
            .credit_notes
            .values()
            .filter(|d| d.live())
            .filter_map(|d| d.current().and_then(|c| c.total))
            .sum();
        credited >= refunded
    }

    /// The key of the order: `<store>/<order id>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.store, self.order_id)
    }
}

/// RFC 3339 in UTC with milliseconds (so instants compare as text); unparsable text as is.
pub fn normalise(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| t.to_owned())
}
