//! Xero payment terms (`PaymentTerms.Sales {Day, Type}` on a contact or the organisation) and
//! the due date they give an invoice.

use chrono::{Datelike, Days, NaiveDate};
use ledgerline_xero_client::model::{PaymentTerms, Term};

/// Contacts' sales terms as last read or sent (ContactID → terms, and when), one map per tenant
/// shared by its workers: a contact created by either path has known terms, with no read.
pub type KnownTerms = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, (Option<Terms>, std::time::Instant)>>,
>;

/// Records `terms` for the contact `id` as known now.
pub fn know(known: &KnownTerms, id: &str, terms: Option<Terms>) {
    known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.to_owned(), (terms, std::time::Instant::now()));
}

/// How `day` is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    /// `day` days after the invoice date.
    DaysAfterBillDate,
    /// `day` days after the end of the invoice's month.
    DaysAfterBillMonth,
    /// Day `day` of the invoice's month.
    OfCurrentMonth,
    /// Day `day` of the month after the invoice's.
    OfFollowingMonth,
}

/// One set of sales payment terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Days, or day of the month (Xero: 0–31).
    pub day: u32,
    /// How `day` is counted.
    pub kind: TermKind,
}

impl Terms {
    /// The sales terms of a contact's or the organisation's `PaymentTerms`, if set and
    /// understood.
    pub fn sales_of(terms: &PaymentTerms) -> Option<Self> {
        let sales = terms.sales.as_ref()?;
        let kind = match sales.kind.as_str() {
            "DAYSAFTERBILLDATE" => TermKind::DaysAfterBillDate,
            "DAYSAFTERBILLMONTH" => TermKind::DaysAfterBillMonth,
            "OFCURRENTMONTH" => TermKind::OfCurrentMonth,
            "OFFOLLOWINGMONTH" => TermKind::OfFollowingMonth,
            _ => return None,
        };
        Some(Self {
            day: u32::try_from(sales.day?).ok()?.min(3660),
            kind,
        })
    }

    /// Xero's `PaymentTerms` for `days` days after the invoice date (sent on a contact).
    pub fn days_after(days: u32) -> PaymentTerms {
        PaymentTerms {
            sales: Some(Term {
                day: Some(u64::from(days)),
                kind: "DAYSAFTERBILLDATE".into(),
            }),
            bills: None,
        }
    }

    /// The due date of an invoice dated `date`. A day of the month past the month's end means
    /// its last day; a due date that would fall before the invoice date is the invoice date
    /// (day 5 "of the current month" on an invoice of the 20th).
    pub fn due(&self, date: NaiveDate) -> NaiveDate {
        let due = match self.kind {
            TermKind::DaysAfterBillDate => add_days(date, self.day),
            TermKind::DaysAfterBillMonth => {
                add_days(month_end(date.year(), date.month()), self.day)
            }
            TermKind::OfCurrentMonth => day_of(date.year(), date.month(), self.day),
            TermKind::OfFollowingMonth => {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                day_of(y, m, self.day)
            }
        };
        due.max(date)
    }
}

fn add_days(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_days(Days::new(u64::from(n))).unwrap_or(d)
}

fn month_end(year: i32, month: u32) -> NaiveDate {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .unwrap_or(NaiveDate::MAX)
}

/// Day `day` of the month, clamped to the month (day 0 counts as the 1st).
fn day_of(year: i32, month: u32, day: u32) -> NaiveDate {
    let end = month_end(year, month);
    NaiveDate::from_ymd_opt(year, month, day.clamp(1, end.day())).unwrap_or(end)
}

/// The due date of an invoice dated `date` without a due date of its own: the contact's sales
/// terms, else the organisation's, else `default_days` after the invoice date.
pub fn due_date(
    date: NaiveDate,
    contact: Option<Terms>,
    org: Option<Terms>,
    default_days: u32,
) -> NaiveDate {
    match contact.or(org) {
        Some(t) => t.due(date),
        None => add_days(date, default_days),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn t(day: u32, kind: TermKind) -> Terms {
        Terms { day, kind }
    }

    #[test]
    fn days_after_the_bill_date_cross_months_and_years() {
        let k = TermKind::DaysAfterBillDate;
        assert_eq!(t(20, k).due(day("2026-01-15")), day("2026-02-04"));
        assert_eq!(t(7, k).due(day("2026-12-28")), day("2027-01-04"));
        assert_eq!(t(0, k).due(day("2026-03-01")), day("2026-03-01"));
        assert_eq!(
            t(1, k).due(day("2028-02-28")),
            day("2028-02-29"),
            "leap year"
        );
    }

    #[test]
    fn days_after_the_bill_month_count_from_its_last_day() {
        let k = TermKind::DaysAfterBillMonth;
        assert_eq!(t(10, k).due(day("2026-01-15")), day("2026-02-10"));
        assert_eq!(t(0, k).due(day("2026-02-03")), day("2026-02-28"));
        assert_eq!(
            t(0, k).due(day("2028-02-03")),
            day("2028-02-29"),
            "leap year"
        );
        assert_eq!(t(5, k).due(day("2026-12-31")), day("2027-01-05"));
    }

    #[test]
    fn of_the_current_month_clamps_and_never_precedes_the_invoice() {
        let k = TermKind::OfCurrentMonth;
        assert_eq!(t(20, k).due(day("2026-03-05")), day("2026-03-20"));
        assert_eq!(t(31, k).due(day("2026-04-05")), day("2026-04-30"));
        assert_eq!(
            t(31, k).due(day("2100-02-05")),
            day("2100-02-28"),
            "no leap day in 2100"
        );
        assert_eq!(t(5, k).due(day("2026-03-20")), day("2026-03-20"));
    }

    #[test]
    fn of_the_following_month_rolls_the_year_and_clamps_february() {
        let k = TermKind::OfFollowingMonth;
        assert_eq!(t(20, k).due(day("2026-01-31")), day("2026-02-20"));
        assert_eq!(t(31, k).due(day("2026-01-31")), day("2026-02-28"));
        assert_eq!(
            t(30, k).due(day("2024-01-10")),
            day("2024-02-29"),
            "leap year"
        );
        assert_eq!(t(15, k).due(day("2026-12-20")), day("2027-01-15"));
        assert_eq!(t(0, k).due(day("2026-06-20")), day("2026-07-01"));
    }

    #[test]
    fn the_contact_wins_then_the_org_then_the_default() {
        let d = day("2026-05-10");
        let c = Some(t(7, TermKind::DaysAfterBillDate));
        let o = Some(t(20, TermKind::OfFollowingMonth));
        assert_eq!(due_date(d, c, o, 30), day("2026-05-17"));
        assert_eq!(due_date(d, None, o, 30), day("2026-06-20"));
        assert_eq!(due_date(d, None, None, 30), day("2026-06-09"));
        assert_eq!(due_date(d, None, None, 0), d);
    }

    #[test]
    fn terms_are_read_from_xero_json() {
        let read = |text: &str| {
            let r = ledgerline_xero_client::model::parse(&format!(r#"{{"Contacts":[{text}]}}"#))
                .unwrap();
            r.contacts[0]
                .payment_terms
                .as_ref()
                .and_then(Terms::sales_of)
        };
        assert_eq!(
            read(
                r#"{"PaymentTerms": {"Bills": {"Day": 15, "Type": "OFCURRENTMONTH"}, "Sales": {"Day": 10, "Type": "DAYSAFTERBILLMONTH"}}}"#
            ),
            Some(t(10, TermKind::DaysAfterBillMonth))
        );
        assert_eq!(
            read(r#"{"PaymentTerms": {"Bills": {"Day": 1, "Type": "OFCURRENTMONTH"}}}"#),
            None
        );
        assert_eq!(read(r#"{"Name": "x"}"#), None);
        assert_eq!(
            read(r#"{"PaymentTerms": {"Sales": {"Day": 3, "Type": "SOMETIME"}}}"#),
            None
        );
        assert_eq!(
            Terms::sales_of(&Terms::days_after(14)),
            Some(t(14, TermKind::DaysAfterBillDate))
        );
    }
}
