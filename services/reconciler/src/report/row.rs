//! One order's line in the reconciliation report, computed from its view whenever the view
//! changes: the store's figures, Xero's, and why each difference exists. The report only adds
//! rows up, so it never needs the views (or Xero) at report time.

use crate::view::{Doc, OrderView};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A figure the two sides are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Order totals against live invoice totals.
    Invoiced,
    /// The same, net of tax (where an explicit rounding line shows).
    Net,
    /// Order tax against invoice tax (where Xero's per-line rounding shows).
    Tax,
    /// Payments received against payments in Xero.
    Paid,
    /// Refunds against credit notes.
    Credited,
}

impl Measure {
    /// Every measure, in report order.
    pub const ALL: [Measure; 5] = [
        Measure::Invoiced,
        Measure::Net,
        Measure::Tax,
        Measure::Paid,
        Measure::Credited,
    ];

    /// Whether its unexplained remainder counts towards the headline: net and tax are parts
    /// of the invoiced total, so counting them as well would count a cent twice.
    pub fn headline(self) -> bool {
        matches!(self, Measure::Invoiced | Measure::Paid | Measure::Credited)
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Invoiced => "invoiced",
            Measure::Net => "net",
            Measure::Tax => "tax",
            Measure::Paid => "paid",
            Measure::Credited => "credited",
        }
    }
}

/// Why a difference exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Xero rounds tax per line; the store rounded the order's tax once.
    TaxRounding,
    /// The writer's explicit rounding-adjustment line, which makes Xero's total the store's.
    RoundingLine,
    /// The order was converted into the base currency; the figure is compared at that rate.
    Fx,
    /// A finding is open on the order and the pipeline is acting on it (repair or resync).
    Finding,
    /// Not yet written, or written moments ago and not settled (within the settle SLA).
    InFlight,
    /// Held in the review queue for a person.
    InReview,
    /// None of the above: a cent nobody can account for.
    Unexplained,
}

impl Cause {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::TaxRounding => "tax_rounding",
            Cause::RoundingLine => "rounding_line",
            Cause::Fx => "fx",
            Cause::Finding => "finding",
            Cause::InFlight => "in_flight",
            Cause::InReview => "in_review",
            Cause::Unexplained => "unexplained",
        }
    }

    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::TaxRounding => "Xero's per-line tax rounding",
            Cause::RoundingLine => "explicit rounding-adjustment line",
            Cause::Fx => "FX: converted to the base currency at the order's rate",
            Cause::Finding => "open finding, being repaired",
            Cause::InFlight => "not yet written (in flight)",
            Cause::InReview => "not yet written (in review)",
            Cause::Unexplained => "unexplained",
        }
    }
}

/// One difference of one order: store minus Xero, in the store's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Why {
    /// The figure.
    pub m: Measure,
    /// Why.
    pub c: Cause,
    /// Store minus Xero.
    pub a: Decimal,
    /// The finding that explains it (or, unexplained, the one a person must look at).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub f: String,
}

fn zero(d: &Decimal) -> bool {
    d.is_zero()
}

fn no(b: &bool) -> bool {
    !*b
}

/// The most per-line tax rounding can move on one order (half a cent a line, twenty lines):
/// a larger swap between tax and net is a wrong rate, not rounding.
const PER_LINE_ROUNDING_CAP: Decimal = Decimal::from_parts(10, 0, 0, false, 2);

/// One order's figures. Short field names: a month of a busy shop is 300,000 of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The view's revision it was computed from: an older one never replaces a newer.
    pub rev: u64,
    /// Order number.
    pub n: String,
    /// When the order was placed, RFC 3339: its day is taken in the organisation's timezone
    /// when the report is made.
    pub at: String,
    /// The store's currency.
    pub cur: String,
    /// Cancelled in the store (its total is then expected nowhere in Xero).
    #[serde(default, skip_serializing_if = "no")]
    pub void: bool,
    /// The store has no figures yet: the order was held before it was normalised.
    #[serde(default, skip_serializing_if = "no")]
    pub unknown: bool,
    /// Order total (with tax).
    #[serde(default, skip_serializing_if = "zero")]
    pub gross: Decimal,
    /// Its tax.
    #[serde(default, skip_serializing_if = "zero")]
    pub tax: Decimal,
    /// Shipping, net of tax.
    #[serde(default, skip_serializing_if = "zero")]
    pub ship: Decimal,
    /// Discounts (zero or negative).
    #[serde(default, skip_serializing_if = "zero")]
    pub disc: Decimal,
    /// Received.
    #[serde(default, skip_serializing_if = "zero")]
    pub paid: Decimal,
    /// Refunded.
    #[serde(default, skip_serializing_if = "zero")]
    pub refunded: Decimal,
    /// Live invoices in Xero.
    #[serde(default)]
    pub xi: u32,
    /// Their total, in the invoices' currency.
    #[serde(default, skip_serializing_if = "zero")]
    pub xinv: Decimal,
    /// Their tax.
    #[serde(default, skip_serializing_if = "zero")]
    pub xtax: Decimal,
    /// Their rounding-adjustment lines.
    #[serde(default, skip_serializing_if = "zero")]
    pub xrnd: Decimal,
    /// The invoices' currency, when not the store's (converted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub xcur: String,
    /// Xero's CurrencyRate on the invoice (units of its currency per base unit), when not 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xrate: Option<Decimal>,
    /// The writer's conversion rate (base units per store unit), when it converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx: Option<Decimal>,
    /// Payments in Xero by account code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xpaid: BTreeMap<String, Decimal>,
    /// Refunds paid out in Xero (payments on its credit notes), per account code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xref: BTreeMap<String, Decimal>,
    /// Live credit notes.
    #[serde(default, skip_serializing_if = "zero")]
    pub xcred: Decimal,
    /// Every difference, with its cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<Why>,
    /// Findings open on the order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<String>,
    /// The review queue's entry holding it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub review: String,
    /// An in-flight difference still here after this instant is overdue (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub settle_by: String,
}

/// What a row's causes depend on besides the view.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Finding kinds the pipeline acts on (policy repair or resync): a difference under one
    /// is explained. Under any other open finding it is not: a person must judge it.
    pub acting: BTreeSet<String>,
    /// How long a change may take to settle in Xero.
    pub settle: Duration,
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn sum<'a>(docs: impl Iterator<Item = &'a Doc>, f: impl Fn(&Doc) -> Option<Decimal>) -> Decimal {
    docs.filter_map(f).sum()
}

impl Row {
    /// The row of `view` at revision `rev`; `None` for a view with nothing to report (a
    /// Xero document whose order the store never told us about).
    pub fn of(view: &OrderView, rev: u64, rules: &Rules) -> Option<Row> {
        let Some(s) = &view.store_side else {
            // Held before it was normalised: the store's figures are not known yet.
            let r = view.xero.review.as_ref()?;
            return Some(Row {
                rev,
                n: view.order_number.clone(),
                // The day it was placed; the day it failed only when the store's date is not
                // known (a body that could not be read that far).
                at: if chrono::DateTime::parse_from_rfc3339(&r.placed_at).is_ok() {
                    r.placed_at.clone()
                } else {
                    r.at.clone()
                },
                unknown: true,
                review: r.entry.clone(),
                ..Default::default()
            });
        };
        let live: Vec<&Doc> = view.live_invoices().into_iter().map(|(_, d)| d).collect();
        let current = live.iter().filter_map(|d| d.current());
        let credits = view.xero.credit_notes.values().filter(|d| d.live());
        let fx = live.iter().find_map(|d| d.fx.as_ref().map(|(_, r)| *r));
        let first = live.first().and_then(|d| d.current());
        let mut row = Row {
            rev,
            n: view.order_number.clone(),
            at: if s.created_at.is_empty() {
                s.first_seen.clone()
            } else {
                s.created_at.clone()
            },
            cur: s.currency.clone(),
            void: s.voided(),
            gross: if s.voided() { Decimal::ZERO } else { s.total },
            tax: if s.voided() { Decimal::ZERO } else { s.tax },
            ship: s.shipping,
            disc: s.discounts,
            paid: if s.voided() {
                Decimal::ZERO
            } else {
                s.amount_paid
            },
            refunded: s.refunds.values().sum(),
            xi: live.len() as u32,
            xinv: current.clone().filter_map(|c| c.total).sum(),
            xtax: current.clone().filter_map(|c| c.tax).sum(),
            xrnd: sum(live.iter().copied(), |d| d.rounding),
            xcur: first
                .map(|c| c.currency.clone())
                .filter(|c| !c.is_empty() && *c != s.currency)
                .unwrap_or_default(),
            xrate: first.and_then(|c| c.rate).filter(|r| *r != Decimal::ONE),
            fx,
            xcred: credits
                .filter_map(|d| d.current().and_then(|c| c.total))
                .sum(),
            review: view
                .xero
                .review
                .as_ref()
                .map(|r| r.entry.clone())
                .unwrap_or_default(),
            open: view.findings.keys().cloned().collect(),
            ..Default::default()
        };
        for p in view.xero.payments.values() {
            if p.status == "DELETED" {
                continue;
            }
            if let Some(a) = p.amount {
                let account = if p.account.is_empty() {
                    "unknown".to_owned()
                } else {
                    p.account.clone()
                };
                // A refund pays a credit note: Xero's reads name the document; the writer's
                // facts name an invoice's payment by the invoice number, a refund otherwise.
                let refund = if p.document_id.is_empty() {
                    !p.number.is_empty()
                        && !view.xero.invoices.values().any(|d| d.number == p.number)
                } else {
                    view.xero.credit_notes.contains_key(&p.document_id)
                };
                let to = if refund {
                    &mut row.xref
                } else {
                    &mut row.xpaid
                };
                *to.entry(account).or_default() += a;
            }
        }
        let tax_known = live
            .iter()
            .all(|d| d.current().is_some_and(|c| c.tax.is_some()));
        row.explain(view, rules, tax_known);
        Some(row)
    }

    /// Xero's figure in the store's currency (converted back at the writer's rate).
    fn in_store(&self, xero: Decimal) -> Decimal {
        match self.fx {
            Some(r) if !r.is_zero() => round2(xero / r),
            _ => xero,
        }
    }

    /// Xero holds exactly the store's figure converted at the writer's rate.
    fn converted(&self, store: Decimal, xero: Decimal) -> bool {
        self.fx.is_some_and(|r| round2(store * r) == xero)
    }

    fn explain(&mut self, view: &OrderView, rules: &Rules, tax_known: bool) {
        let s = view.store_side.as_ref().expect("a row with a store side");
        let behind = view.xero.written_version < s.due_version();
        let acting = view.findings.keys().find(|k| rules.acting.contains(*k));
        let judging = view.findings.keys().find(|k| !rules.acting.contains(*k));
        let general = |m: Measure, a: Decimal| -> Why {
            let (c, f) = if !self.review.is_empty() && (behind || self.xi == 0) {
                (Cause::InReview, String::new())
            } else if let Some(k) = acting {
                (Cause::Finding, k.clone())
            } else if let Some(k) = judging {
                (Cause::Unexplained, k.clone())
            } else {
                (Cause::InFlight, String::new())
            };
            Why { m, c, a, f }
        };
        let xpaid: Decimal = self.xpaid.values().sum();
        let mut why = Vec::new();
        let invoiced = self.gross - self.in_store(self.xinv);
        if !invoiced.is_zero() {
            if !behind && self.converted(self.gross, self.xinv) {
                why.push(Why {
                    m: Measure::Invoiced,
                    c: Cause::Fx,
                    a: invoiced,
                    f: String::new(),
                });
            } else {
                why.push(general(Measure::Invoiced, invoiced));
            }
        }
        if tax_known {
            let tax = self.tax - self.in_store(self.xtax);
            let net = (self.gross - self.tax) - self.in_store(self.xinv - self.xtax);
            // With the totals agreeing, net and tax differ only by how each side rounded.
            let settled = why.is_empty() && !behind;
            for (m, d) in [(Measure::Tax, tax), (Measure::Net, net)] {
                if d.is_zero() {
                    continue;
                }
                if !settled {
                    why.push(general(m, d));
                } else if self.fx.is_some() {
                    why.push(Why {
                        m,
                        c: Cause::Fx,
                        a: d,
                        f: String::new(),
                    });
                } else if m == Measure::Tax {
                    why.push(Why {
                        m,
                        c: Cause::TaxRounding,
                        a: d,
                        f: String::new(),
                    });
                } else {
                    // The rounding line is in Xero's net: it explains minus its amount.
                    let line = -self.xrnd;
                    if !line.is_zero() {
                        why.push(Why {
                            m,
                            c: Cause::RoundingLine,
                            a: line,
                            f: String::new(),
                        });
                    }
                    // Prices that include tax: Xero's lines keep the store's amounts, so its
                    // per-line tax moves the same cents between tax and net.
                    let rest = d - line;
                    if !rest.is_zero() && rest == -tax && tax.abs() <= PER_LINE_ROUNDING_CAP {
                        why.push(Why {
                            m,
                            c: Cause::TaxRounding,
                            a: rest,
                            f: String::new(),
                        });
                    } else if !rest.is_zero() {
                        why.push(general(m, rest));
                    }
                }
            }
        }
        for (m, store, xero) in [
            (Measure::Paid, self.paid, xpaid),
            (Measure::Credited, self.refunded, self.xcred),
        ] {
            let d = store - self.in_store(xero);
            if d.is_zero() {
                continue;
            }
            if !behind && self.converted(store, xero) {
                why.push(Why {
                    m,
                    c: Cause::Fx,
                    a: d,
                    f: String::new(),
                });
            } else {
                why.push(general(m, d));
            }
        }
        if why.iter().any(|w| w.c == Cause::InFlight) {
            let changed = chrono::DateTime::parse_from_rfc3339(&s.changed_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let by = changed + chrono::Duration::from_std(rules.settle).unwrap_or_default();
            self.settle_by = by.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
        self.why = why;
    }

    /// The local day the order falls on in `tz`.
    pub fn day(&self, tz: chrono_tz::Tz) -> Option<chrono::NaiveDate> {
        chrono::DateTime::parse_from_rfc3339(self.at.trim())
            .ok()
            .map(|t| t.with_timezone(&tz).date_naive())
    }

    /// The UTC date its row is stored under.
    pub fn utc_date(&self) -> chrono::NaiveDate {
        chrono::DateTime::parse_from_rfc3339(self.at.trim())
            .map(|t| t.with_timezone(&chrono::Utc).date_naive())
            .unwrap_or_else(|_| chrono::Utc::now().date_naive())
    }

    /// Its differences as of `now`: an in-flight difference past its settle time is
    /// unexplained (overdue), whatever the row said when it was computed.
    pub fn causes(&self, now: chrono::DateTime<chrono::Utc>) -> impl Iterator<Item = Why> + '_ {
        let overdue = chrono::DateTime::parse_from_rfc3339(&self.settle_by)
            .is_ok_and(|t| t.with_timezone(&chrono::Utc) < now);
        self.why.iter().map(move |w| {
            let mut w = w.clone();
            if overdue && w.c == Cause::InFlight {
                w.c = Cause::Unexplained;
                w.f = "overdue".into();
            }
            w
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{DocState, OpenFinding, PaymentSeen, StoreSide};
    use rust_decimal_macros::dec;

    fn view(total: Decimal, tax: Decimal) -> OrderView {
        let mut v = OrderView::new("main", "1001");
        v.order_number = "SO-1001".into();
        v.store_side = Some(StoreSide {
            version: 2,
            status: "paid".into(),
            currency: "NZD".into(),
            total,
            tax,
            amount_paid: total,
            created_at: "2026-12-01T10:30:00Z".into(),
            changed_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        });
        v.xero.written_version = 2;
        v
    }

    fn invoice(v: &mut OrderView, total: Decimal, tax: Decimal, rounding: Option<Decimal>) {
        v.xero.invoices.insert(
            "inv-1".into(),
            Doc {
                number: "SO-1001".into(),
                written: Some(DocState {
                    status: "PAID".into(),
                    total: Some(total),
                    tax: Some(tax),
                    currency: "NZD".into(),
                    at: "2026-12-01T10:30:01Z".into(),
                    ..Default::default()
                }),
                rounding,
                ..Default::default()
            },
        );
        v.xero.payments.insert(
            "pay-1".into(),
            PaymentSeen {
                amount: Some(total),
                by_writer: true,
                status: "AUTHORISED".into(),
                account: "090".into(),
                ..Default::default()
            },
        );
    }

    fn rules() -> Rules {
        Rules {
            acting: ["no_invoice".to_owned(), "not_paid".to_owned()].into(),
            settle: Duration::from_secs(600),
        }
    }

    #[test]
    fn per_line_tax_rounding_and_the_rounding_line_explain_each_other() {
        // The store taxed the order once (15.01); Xero per line (15.00), and the writer's
        // rounding line (+0.01) makes the totals agree.
        let mut v = view(dec!(115.07), dec!(15.01));
        invoice(&mut v, dec!(115.07), dec!(15.00), Some(dec!(0.01)));
        let r = Row::of(&v, 7, &rules()).unwrap();
        assert_eq!(r.xpaid[&"090".to_owned()], dec!(115.07));
        let causes: Vec<(Measure, Cause, Decimal)> =
            r.why.iter().map(|w| (w.m, w.c, w.a)).collect();
        assert_eq!(
            causes,
            vec![
                (Measure::Tax, Cause::TaxRounding, dec!(0.01)),
                (Measure::Net, Cause::RoundingLine, dec!(-0.01)),
            ]
        );
    }

    #[test]
    fn a_total_edited_in_xero_under_a_reported_finding_is_unexplained() {
        let mut v = view(dec!(115.00), dec!(15.00));
        invoice(&mut v, dec!(115.01), dec!(15.00), None);
        v.xero.payments.clear();
        v.store_side.as_mut().unwrap().amount_paid = Decimal::ZERO;
        v.findings
            .insert("changed_in_xero".into(), OpenFinding::default());
        let r = Row::of(&v, 7, &rules()).unwrap();
        let inv = r.why.iter().find(|w| w.m == Measure::Invoiced).unwrap();
        assert_eq!(
            (inv.c, inv.a, inv.f.as_str()),
            (Cause::Unexplained, dec!(-0.01), "changed_in_xero")
        );
    }

    #[test]
    fn not_yet_written_is_in_flight_or_in_review_and_overdue_once_the_sla_passes() {
        let mut v = view(dec!(50), dec!(0));
        v.xero.written_version = 0;
        let r = Row::of(&v, 1, &rules()).unwrap();
        assert!(r.why.iter().all(|w| w.c == Cause::InFlight), "{:?}", r.why);
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        assert!(r.causes(later).all(|w| w.c == Cause::Unexplained));
        v.xero.review = Some(crate::view::Review {
            entry: "dl-1".into(),
            ..Default::default()
        });
        let r = Row::of(&v, 2, &rules()).unwrap();
        assert!(r.why.iter().all(|w| w.c == Cause::InReview), "{:?}", r.why);
        assert!(r.causes(later).all(|w| w.c == Cause::InReview));
    }

    #[test]
    fn an_order_held_before_it_was_normalised_is_on_the_day_it_was_placed() {
        let mut v = OrderView::new("main", "1100");
        v.order_number = "SO-1100".into();
        v.xero.review = Some(crate::view::Review {
            entry: "dl-2".into(),
            at: "2026-12-08T01:00:00.000Z".into(),
            placed_at: "2026-11-20T10:30:00Z".into(),
            ..Default::default()
        });
        let r = Row::of(&v, 1, &rules()).unwrap();
        assert!(r.unknown);
        assert_eq!(
            r.utc_date(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
        );
        assert_eq!(
            r.day(chrono_tz::Pacific::Auckland),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
        );
        v.xero.review.as_mut().unwrap().placed_at.clear();
        let r = Row::of(&v, 2, &rules()).unwrap();
        assert_eq!(
            r.utc_date(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 8).unwrap()
        );
    }

    #[test]
    fn a_converted_order_is_compared_at_the_writers_rate() {
        // 100.00 USD at 1.6543 NZD per USD: Xero holds 165.43 NZD.
        let mut v = view(dec!(100.00), dec!(0));
        invoice(&mut v, dec!(165.43), dec!(0), None);
        v.xero.payments.clear();
        v.store_side.as_mut().unwrap().amount_paid = Decimal::ZERO;
        v.xero.invoices.get_mut("inv-1").unwrap().fx = Some(("USD".into(), dec!(1.6543)));
        let r = Row::of(&v, 1, &rules()).unwrap();
        // 165.43 / 1.6543 = 100.0000 → no difference at all.
        assert!(r.why.is_empty(), "{:?}", r.why);
        // 10.05 at 0.3 is 3.015, so Xero holds 3.02, which is 10.07 back at the same rate:
        // a 0.02 difference that is the conversion's, not anyone's mistake.
        let mut v = view(dec!(10.05), dec!(0));
        invoice(&mut v, dec!(3.02), dec!(0), None);
        v.xero.payments.clear();
        v.store_side.as_mut().unwrap().amount_paid = Decimal::ZERO;
        v.xero.invoices.get_mut("inv-1").unwrap().fx = Some(("USD".into(), dec!(0.3)));
        let r = Row::of(&v, 2, &rules()).unwrap();
        let inv = r.why.iter().find(|w| w.m == Measure::Invoiced).unwrap();
        assert_eq!((inv.c, inv.a), (Cause::Fx, dec!(-0.02)));
    }

    #[test]
    fn an_order_at_half_past_eleven_at_night_falls_on_that_local_day() {
        let mut r = Row {
            at: "2026-12-01T10:30:00Z".into(),
            ..Default::default()
        };
        // 23:30 in Auckland (UTC+13 in December) is 10:30 UTC the same day.
        assert_eq!(
            r.day(chrono_tz::Pacific::Auckland),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        // 00:30 the next day in Auckland is still 1 December in UTC.
        r.at = "2026-12-01T11:30:00Z".into();
        assert_eq!(
            r.day(chrono_tz::Pacific::Auckland),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
        );
        // 23:30 in New York (UTC-5) is 04:30 UTC the next day.
        r.at = "2026-12-02T04:30:00Z".into();
        assert_eq!(
            r.day(chrono_tz::America::New_York),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
        );
    }
}
