//! Xero's resources as typed structs: what we send ([`send`]) and what Xero answers
//! ([`Response`] and the resources it holds).
//!
//! Every answer is parsed straight from its text into these types, so an amount is read from
//! the number's own digits (`ledgerline_platform::json::opt_decimal`, never `f64`); an amount
//! that is present but not a number fails the whole answer, and one the caller needs but Xero
//! left out is an [`AmountError`] from [`Need::need`], never 0.

mod contacts;
mod documents;
pub mod send;
mod settings;

pub use contacts::{Contact, PaymentTerms, Term};
pub use documents::{Allocation, CreditNote, Invoice, LineItem, Payment, TrackingRef};
pub use settings::{Account, Currency, Organisation, TaxRate, TrackingCategory, TrackingOption};

use crate::exact::AmountError;
use crate::refusal::Refusal;
use rust_decimal::Decimal;
use serde::Deserialize;

/// Any Accounting API answer: each collection we read, empty when the answer has none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Response {
    /// `Invoices`.
    pub invoices: Vec<Invoice>,
    /// `CreditNotes`.
    pub credit_notes: Vec<CreditNote>,
    /// `Payments`.
    pub payments: Vec<Payment>,
    /// `Allocations`.
    pub allocations: Vec<Allocation>,
    /// `Contacts`.
    pub contacts: Vec<Contact>,
    /// `Organisations`.
    pub organisations: Vec<Organisation>,
    /// `Accounts`.
    pub accounts: Vec<Account>,
    /// `TaxRates`.
    pub tax_rates: Vec<TaxRate>,
    /// `TrackingCategories`.
    pub tracking_categories: Vec<TrackingCategory>,
    /// `Currencies`.
    pub currencies: Vec<Currency>,
}

impl Response {
    /// Elements in every collection of the answer.
    pub fn len(&self) -> usize {
        self.invoices.len()
            + self.credit_notes.len()
            + self.payments.len()
            + self.allocations.len()
            + self.contacts.len()
            + self.organisations.len()
            + self.accounts.len()
            + self.tax_rates.len()
            + self.tracking_categories.len()
            + self.currencies.len()
    }

    /// True when the answer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One message of an element's `ValidationErrors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ValidationError {
    /// Xero's words.
    pub message: String,
}

/// An element of a `summarizeErrors=false` answer: saved, or refused with its messages.
pub trait Element {
    /// `StatusAttributeString` (`OK`, `WARNING`, `ERROR`; absent on reads).
    fn status_attribute(&self) -> Option<&str>;
    /// `ValidationErrors`.
    fn validation_errors(&self) -> &[ValidationError];

    /// The validation messages.
    fn errors(&self) -> Vec<String> {
        self.validation_errors()
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    /// True when the element was saved.
    fn ok(&self) -> bool {
        self.status_attribute() != Some("ERROR") && self.validation_errors().is_empty()
    }

    /// What Xero's refusal of the element means; `None` if it was saved.
    fn refusal(&self) -> Option<Refusal> {
        if self.ok() {
            return None;
        }
        let messages = self.errors();
        Some(if messages.is_empty() {
            Refusal::Validation {
                field: None,
                message: "refused without a message".into(),
            }
        } else {
            Refusal::classify(&messages.join("; "))
        })
    }
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn status_attribute(&self) -> Option<&str> {
                self.status_attribute_string.as_deref()
            }
            fn validation_errors(&self) -> &[ValidationError] {
                &self.validation_errors
            }
        }
    )*};
}
element!(Invoice, CreditNote, Payment, Allocation, Contact);

/// An amount the caller needs: Xero leaving it out is an error, never 0.
pub trait Need {
    /// The amount, or an [`AmountError`] naming `field`.
    fn need(self, field: &str) -> Result<Decimal, AmountError>;
}

impl Need for Option<Decimal> {
    fn need(self, field: &str) -> Result<Decimal, AmountError> {
        self.ok_or_else(|| AmountError {
            field: field.to_owned(),
            why: "missing".into(),
        })
    }
}

/// An instant as Xero writes it in JSON (`/Date(1573755038314+0000)/`, or ISO 8601), as
/// RFC 3339 UTC with milliseconds; `None` for anything else.
pub fn xero_date(s: &str) -> Option<String> {
    let utc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Some(inner) = s
        .trim()
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
    {
        let ms: String = inner
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        return ms
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(utc);
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| utc(t.with_timezone(&chrono::Utc)))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| utc(t.and_utc()))
        })
}

/// A field Xero may send as `null`: read as its default, as a missing one is.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Parses an answer's text. Amounts keep Xero's digits; an unreadable one is an error.
pub fn parse(text: &str) -> Result<Response, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(Response::default());
    }
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn xeros_dates_read_as_rfc3339() {
        assert_eq!(
            super::xero_date("/Date(1573755038314+0000)/").as_deref(),
            Some("2019-11-14T18:10:38.314Z")
        );
        assert_eq!(
            super::xero_date("2019-11-14T18:10:38").as_deref(),
            Some("2019-11-14T18:10:38.000Z")
        );
        assert_eq!(super::xero_date("soon"), None);
    }

    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_keep_every_digit_and_missing_ones_are_errors() {
        let r = parse(
            r#"{"Invoices":[{"InvoiceID":"i","Total":1234.5678901234567890123,"AmountDue":0,
            "LineItems":[{"LineAmount":-0.10,"Tracking":[{"Name":"Region","Option":"North"}]}],
            "Payments":[{"PaymentID":"p","Amount":"39.1304"}]}],"Id":"x"}"#,
        )
        .unwrap();
        let inv = &r.invoices[0];
        assert_eq!(
            inv.total.need("Total").unwrap(),
            Decimal::from_str("1234.5678901234567890123").unwrap()
        );
        assert_eq!(inv.amount_due, Some(Decimal::ZERO));
        assert!(
            inv.amount_paid.need("AmountPaid").is_err(),
            "absent is not 0"
        );
        assert_eq!(
            inv.line_items[0].line_amount,
            Some(Decimal::from_str("-0.10").unwrap())
        );
        assert_eq!(inv.line_items[0].tracking[0].option, "North");
        assert_eq!(
            inv.payments[0].amount,
            Some(Decimal::from_str("39.1304").unwrap())
        );
    }

    #[test]
    fn an_unreadable_amount_fails_the_answer() {
        assert!(parse(r#"{"Invoices":[{"Total":"abc"}]}"#).is_err());
        assert!(parse(r#"{"CreditNotes":[{"RemainingCredit":true}]}"#).is_err());
        assert!(parse("").unwrap().invoices.is_empty());
        let nulls = parse(r#"{"Invoices":[{"Reference":null,"Payments":null,"Total":null}]}"#)
            .expect("nulls read as absent");
        assert_eq!(nulls.invoices[0].reference, "");
        assert!(nulls.invoices[0].total.need("Total").is_err());
    }

    #[test]
    fn elements_say_whether_they_were_saved() {
        let r = parse(
            r#"{"Contacts":[{"ContactID":"c","StatusAttributeString":"OK"},
            {"StatusAttributeString":"ERROR","ValidationErrors":[{"Message":"The contact name Ann is already assigned to another contact. The contact name must be unique across all active contacts."}]}]}"#,
        )
        .unwrap();
        assert!(r.contacts[0].ok());
        assert!(r.contacts[0].refusal().is_none());
        assert!(!r.contacts[1].ok());
        assert!(matches!(
            r.contacts[1].refusal(),
            Some(Refusal::DuplicateContactName(_))
        ));
    }
}
