//! Contacts and payment terms.

use super::ValidationError;
use serde::{Deserialize, Serialize};

/// A contact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Contact {
    /// ContactID.
    #[serde(rename = "ContactID")]
    #[serde(deserialize_with = "super::nullable")]
    pub contact_id: String,
    /// ContactNumber.
    #[serde(deserialize_with = "super::nullable")]
    pub contact_number: String,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// EmailAddress.
    #[serde(deserialize_with = "super::nullable")]
    pub email_address: String,
    /// ACTIVE or ARCHIVED.
    #[serde(deserialize_with = "super::nullable")]
    pub contact_status: String,
    /// PaymentTerms.
    pub payment_terms: Option<PaymentTerms>,
    /// UpdatedDateUTC (see [`super::xero_date`]).
    #[serde(rename = "UpdatedDateUTC", deserialize_with = "super::nullable")]
    pub updated_date_utc: String,
    /// StatusAttributeString (write answers).
    pub status_attribute_string: Option<String>,
    /// ValidationErrors (write answers).
    #[serde(deserialize_with = "super::nullable")]
    pub validation_errors: Vec<ValidationError>,
}

/// A contact's or the organisation's payment terms (sent and read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PaymentTerms {
    /// Terms for sales invoices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales: Option<Term>,
    /// Terms for bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bills: Option<Term>,
}

/// One set of terms: a day and how it is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Term {
    /// Days, or day of the month.
    pub day: Option<u64>,
    /// DAYSAFTERBILLDATE, DAYSAFTERBILLMONTH, OFCURRENTMONTH or OFFOLLOWINGMONTH.
    #[serde(rename = "Type")]
    pub kind: String,
}
