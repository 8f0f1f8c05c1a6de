//! The report from the rows: per local day (in the organisation's timezone) and currency, the
//! store's figures, Xero's, payments per account, FX, every difference with its cause and the
//! orders it comes from, and what is left unexplained, order by order.

use super::org::Org;
use super::row::{Cause, Measure, Row};
use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use std::collections::BTreeMap;

/// Order numbers named per explanation line (the JSON and the page; the CSV has them all
/// through the unexplained list, and the API's order view has the rest).
pub const SAMPLE: usize = 12;

/// One day and currency (or, with no day, the whole range's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Line {
    /// The local day; none for a range total.
    pub day: Option<NaiveDate>,
    /// The store's currency.
    pub currency: String,
    /// Orders placed.
    pub orders: u64,
    /// Of them, cancelled.
    pub cancelled: u64,
    /// Order totals (cancelled orders count nothing).
    pub gross: Decimal,
    /// Their tax.
    pub tax: Decimal,
    /// Their shipping, net of tax.
    pub shipping: Decimal,
    /// Their discounts.
    pub discounts: Decimal,
    /// Received in the store.
    pub paid: Decimal,
    /// Refunded in the store.
    pub refunded: Decimal,
    /// Xero's side.
    pub xero: XeroLine,
    /// In the base currency, when the currency is not it.
    pub fx: Option<Fx>,
    /// Store minus Xero, per measure.
    pub differences: BTreeMap<Measure, Decimal>,
    /// Why, line by line.
    pub explained: Vec<Explanation>,
    /// What no cause accounts for (invoiced, paid and credited; net and tax are parts of the
    /// invoiced total).
    pub unexplained: Decimal,
}

/// Xero's side of a line, in the store's currency (a converted order's at the writer's rate).
#[derive(Debug, Clone, Default, Serialize)]
pub struct XeroLine {
    /// Live invoices.
    pub invoices: u64,
    /// Their totals.
    pub invoiced: Decimal,
    /// Their tax.
    pub tax: Decimal,
    /// Their rounding-adjustment lines.
    pub rounding: Decimal,
    /// Payments per account code, in the currency they were made in (what the bank feed
    /// is matched against).
    pub payments: BTreeMap<String, Decimal>,
    /// All payments.
    pub paid: Decimal,
    /// Refunds paid out (payments on credit notes) per account code, in the currency paid.
    pub refunds: BTreeMap<String, Decimal>,
    /// Live credit notes.
    pub credited: Decimal,
}

/// The base-currency view of a foreign-currency line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fx {
    /// Xero's base currency.
    pub base_currency: String,
    /// Xero's invoices in it, each at the rate it was written at.
    pub invoiced_base: Decimal,
    /// Base units per unit of the currency, as used on average (invoiced_base / invoiced).
    pub rate: Option<Decimal>,
    /// Orders converted into the base currency by the writer (at its configured rate).
    pub converted: u64,
}

/// One cause of a difference.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The figure.
    pub measure: Measure,
    /// Why.
    pub cause: Cause,
    /// In words.
    pub description: &'static str,
    /// The finding, for cause `finding`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub finding: String,
    /// Store minus Xero.
    pub amount: Decimal,
    /// Orders it comes from.
    pub orders: u64,
    /// The first of them.
    pub sample: Vec<String>,
}

/// An order with an unexplained difference.
#[derive(Debug, Clone, Serialize)]
pub struct Unexplained {
    /// Local day.
    pub day: Option<NaiveDate>,
    /// Store currency.
    pub currency: String,
    /// Order id.
    pub order_id: String,
    /// Order number.
    pub number: String,
    /// The figure.
    pub measure: Measure,
    /// Store minus Xero.
    pub amount: Decimal,
    /// The open finding a person must look at (`overdue`: in flight past its SLA).
    pub finding: String,
}

/// An unresolved finding on an order of the range.
#[derive(Debug, Clone, Serialize)]
pub struct OpenFinding {
    /// Local day.
    pub day: Option<NaiveDate>,
    /// Order id.
    pub order_id: String,
    /// Order number.
    pub number: String,
    /// Kind.
    pub kind: String,
}

/// An order held in the review queue.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    /// Local day.
    pub day: Option<NaiveDate>,
    /// Order id.
    pub order_id: String,
    /// Order number.
    pub number: String,
    /// The queue's entry.
    pub entry: String,
    /// Whether the store's figures are known (an order held before normalisation has none).
    pub figures_known: bool,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Store.
    pub store: String,
    /// First local day.
    pub from: NaiveDate,
    /// Last local day.
    pub to: NaiveDate,
    /// The organisation's timezone the days are in.
    pub timezone: String,
    /// Xero's base currency.
    pub base_currency: String,
    /// The organisation's settings were read from Xero (else days are in UTC).
    pub org_known: bool,
    /// When made (RFC 3339).
    pub generated_at: String,
    /// Orders in the range.
    pub orders: u64,
    /// Per day and currency.
    pub days: Vec<Line>,
    /// Per currency over the range.
    pub currencies: Vec<Line>,
    /// Every order with an unexplained difference.
    pub unexplained: Vec<Unexplained>,
    /// Unresolved findings.
    pub findings: Vec<OpenFinding>,
    /// Orders held in the review queue.
    pub held: Vec<Held>,
    /// No unexplained difference anywhere.
    pub ties_out: bool,
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

impl Line {
    fn add(&mut self, id: &str, r: &Row, causes: &[super::row::Why]) {
        if r.unknown {
            return;
        }
        self.orders += 1;
        self.cancelled += u64::from(r.void);
        self.gross += r.gross;
        self.tax += r.tax;
        self.shipping += r.ship;
        self.discounts += r.disc;
        self.paid += r.paid;
        self.refunded += r.refunded;
        let back = |x: Decimal| match r.fx {
            Some(rate) if !rate.is_zero() => round2(x / rate),
            _ => x,
        };
        let x = &mut self.xero;
        x.invoices += u64::from(r.xi);
        x.invoiced += back(r.xinv);
        x.tax += back(r.xtax);
        x.rounding += back(r.xrnd);
        x.credited += back(r.xcred);
        for (account, a) in &r.xpaid {
            *x.payments.entry(account.clone()).or_default() += a;
            x.paid += back(*a);
        }
        for (account, a) in &r.xref {
            *x.refunds.entry(account.clone()).or_default() += a;
        }
        if let Some(fx) = self.fx.as_mut() {
            let base = match (r.fx, r.xrate) {
                (Some(_), _) => {
                    fx.converted += 1;
                    r.xinv
                }
                (None, Some(rate)) if !rate.is_zero() => round2(r.xinv / rate),
                _ => r.xinv,
            };
            fx.invoiced_base += base;
        }
        for w in causes {
            let e = match self
                .explained
                .iter_mut()
                .find(|e| e.measure == w.m && e.cause == w.c && e.finding == w.f)
            {
                Some(e) => e,
                None => {
                    self.explained.push(Explanation {
                        measure: w.m,
                        cause: w.c,
                        description: w.c.describe(),
                        finding: w.f.clone(),
                        amount: Decimal::ZERO,
                        orders: 0,
                        sample: vec![],
                    });
                    self.explained.last_mut().expect("just pushed")
                }
            };
            e.amount += w.a;
            e.orders += 1;
            if e.sample.len() < SAMPLE {
                e.sample.push(if r.n.is_empty() {
                    id.to_owned()
                } else {
                    r.n.clone()
                });
            }
        }
    }

    fn finish(&mut self) {
        let x = &self.xero;
        let diffs = [
            (Measure::Invoiced, self.gross - x.invoiced),
            (Measure::Net, (self.gross - self.tax) - (x.invoiced - x.tax)),
            (Measure::Tax, self.tax - x.tax),
            (Measure::Paid, self.paid - x.paid),
            (Measure::Credited, self.refunded - x.credited),
        ];
        self.differences = diffs.into_iter().filter(|(_, d)| !d.is_zero()).collect();
        self.unexplained = self
            .explained
            .iter()
            .filter(|e| e.cause == Cause::Unexplained && e.measure.headline())
            .map(|e| e.amount)
            .sum();
        if let Some(fx) = self.fx.as_mut()
            && !self.xero.invoiced.is_zero()
        {
            fx.rate = Some((fx.invoiced_base / self.xero.invoiced).round_dp(6));
        }
        self.explained.sort_by_key(|e| (e.measure, e.cause));
    }
}

/// Adds up `rows` (order id, row) for `store`'s local days `from..=to` as of `now`.
pub fn assemble(
    rows: Vec<(String, Row)>,
    org: Option<&Org>,
    store: &str,
    from: NaiveDate,
    to: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Report {
    let tz = org.map_or(chrono_tz::UTC, |o| o.tz());
    let base = org.map(|o| o.base_currency.clone()).unwrap_or_default();
    let mut days: BTreeMap<(NaiveDate, String), Line> = BTreeMap::new();
    let mut totals: BTreeMap<String, Line> = BTreeMap::new();
    let mut report = Report {
        store: store.to_owned(),
        from,
        to,
        timezone: tz.name().to_owned(),
        base_currency: base.clone(),
        org_known: org.is_some(),
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        orders: 0,
        days: vec![],
        currencies: vec![],
        unexplained: vec![],
        findings: vec![],
        held: vec![],
        ties_out: true,
    };
    let new_line = |day: Option<NaiveDate>, cur: &str| Line {
        day,
        currency: cur.to_owned(),
        fx: (!base.is_empty() && cur != base).then(|| Fx {
            base_currency: base.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (id, r) in rows {
        let Some(day) = r.day(tz).filter(|d| *d >= from && *d <= to) else {
            continue;
        };
        if !r.review.is_empty() && (r.unknown || r.xi == 0) {
            report.held.push(Held {
                day: Some(day),
                order_id: id.clone(),
                number: r.n.clone(),
                entry: r.review.clone(),
                figures_known: !r.unknown,
            });
        }
        if r.unknown {
            continue;
        }
        report.orders += 1;
        let causes: Vec<_> = r.causes(now).collect();
        days.entry((day, r.cur.clone()))
            .or_insert_with(|| new_line(Some(day), &r.cur))
            .add(&id, &r, &causes);
        totals
            .entry(r.cur.clone())
            .or_insert_with(|| new_line(None, &r.cur))
            .add(&id, &r, &causes);
        for w in causes.iter().filter(|w| w.c == Cause::Unexplained) {
            report.unexplained.push(Unexplained {
                day: Some(day),
                currency: r.cur.clone(),
                order_id: id.clone(),
                number: r.n.clone(),
                measure: w.m,
                amount: w.a,
                finding: w.f.clone(),
            });
        }
        for kind in &r.open {
            report.findings.push(OpenFinding {
                day: Some(day),
                order_id: id.clone(),
                number: r.n.clone(),
                kind: kind.clone(),
            });
        }
    }
    report.days = days
        .into_values()
        .map(|mut l| {
            l.finish();
            l
        })
        .collect();
    report.currencies = totals
        .into_values()
        .map(|mut l| {
            l.finish();
            l
        })
        .collect();
    report.ties_out = report.unexplained.is_empty();
    report
        .unexplained
        .sort_by(|a, b| (a.day, &a.number, a.measure).cmp(&(b.day, &b.number, b.measure)));
    report
        .findings
        .sort_by(|a, b| (a.day, &a.number, &a.kind).cmp(&(b.day, &b.number, &b.kind)));
    report
        .held
        .sort_by(|a, b| (a.day, &a.number).cmp(&(b.day, &b.number)));
    report
}
