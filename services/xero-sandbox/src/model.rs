//! Stored documents. They serialize exactly as Xero answers (PascalCase, MS-JSON dates), and the
//! same form is used for seed files and snapshots.

use crate::xjson::{day, instant, iso, opt_day};
use chrono::{DateTime, NaiveDate, Utc};
use ledgerline_platform::json::{decimal, opt_decimal};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn is_false(b: &bool) -> bool {
    !*b
}

/// One `{"Message": ...}` entry of `ValidationErrors` or `Warnings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// Human-readable text, as Xero words it.
    #[serde(rename = "Message")]
    pub message: String,
}

impl Message {
    /// Wraps a message.
    pub fn new(m: impl Into<String>) -> Self {
        Self { message: m.into() }
    }
}

/// Per-element outcome fields that batch responses add to each element.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// `OK`, `WARNING` or `ERROR`; only set in batch responses.
    #[serde(
        rename = "StatusAttributeString",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub status_attribute_string: Option<String>,
    /// Validation failures for this element.
    #[serde(
        rename = "ValidationErrors",
        skip_serializing_if = "Vec::is_empty",
        default
    )]
    pub validation_errors: Vec<Message>,
    /// Non-blocking warnings for this element.
    #[serde(rename = "Warnings", skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<Message>,
}

/// The organisation record (`GET /Organisation`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Organisation {
    #[serde(rename = "OrganisationID")]
    pub organisation_id: Uuid,
    pub name: String,
    pub legal_name: String,
    pub pays_tax: bool,
    pub version: String,
    pub organisation_type: String,
    pub base_currency: String,
    pub country_code: String,
    pub is_demo_company: bool,
    pub organisation_status: String,
    pub financial_year_end_day: i32,
    pub financial_year_end_month: i32,
    pub sales_tax_basis: String,
    pub sales_tax_period: String,
    pub default_sales_tax: String,
    pub default_purchases_tax: String,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub period_lock_date: Option<NaiveDate>,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub end_of_year_lock_date: Option<NaiveDate>,
    /// Default terms for contacts without their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_terms: Option<PaymentTerms>,
    #[serde(rename = "CreatedDateUTC", with = "instant")]
    pub created_date_utc: DateTime<Utc>,
    /// Xero's Windows-style zone name; the IANA zone lives on the tenant.
    pub timezone: String,
    pub organisation_entity_type: String,
    pub short_code: String,
    pub class: String,
    pub edition: String,
}

/// One side of payment terms: `Day` counted as `Type` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentTerm {
    #[serde(default)]
    pub day: i64,
    /// DAYSAFTERBILLDATE, DAYSAFTERBILLMONTH, OFCURRENTMONTH or OFFOLLOWINGMONTH.
    #[serde(rename = "Type")]
    pub kind: String,
}

impl PaymentTerm {
    /// Xero's types.
    pub const TYPES: [&'static str; 4] = [
        "DAYSAFTERBILLDATE",
        "DAYSAFTERBILLMONTH",
        "OFCURRENTMONTH",
        "OFFOLLOWINGMONTH",
    ];

    /// Why Xero would refuse it, if it would.
    pub fn problem(&self) -> Option<String> {
        if !Self::TYPES.contains(&self.kind.as_str()) {
            return Some(format!("'{}' is not a valid payment term Type", self.kind));
        }
        let max = if self.kind.starts_with("OF") {
            31
        } else {
            3660
        };
        if !(0..=max).contains(&self.day) {
            return Some(format!(
                "The payment term Day must be between 0 and {max} for {}",
                self.kind
            ));
        }
        None
    }
}

/// `PaymentTerms` of a contact or the organisation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentTerms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bills: Option<PaymentTerm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales: Option<PaymentTerm>,
}

impl PaymentTerms {
    /// The first problem of either side.
    pub fn problem(&self) -> Option<String> {
        self.bills
            .iter()
            .chain(self.sales.iter())
            .find_map(PaymentTerm::problem)
    }
}

/// A chart-of-accounts entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(rename = "AccountID", default = "Uuid::new_v4")]
    pub account_id: Uuid,
    pub code: String,
    pub name: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default = "active")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    #[serde(default)]
    pub tax_type: String,
    #[serde(default)]
    pub enable_payments_to_account: bool,
    #[serde(default)]
    pub show_in_expense_claims: bool,
    #[serde(default)]
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_account: Option<String>,
    #[serde(default)]
    pub has_attachments: bool,
    #[serde(rename = "UpdatedDateUTC", with = "instant", default = "Utc::now")]
    pub updated_date_utc: DateTime<Utc>,
}

fn active() -> String {
    "ACTIVE".into()
}

/// One component of a tax rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaxComponent {
    pub name: String,
    #[serde(with = "decimal")]
    pub rate: Decimal,
    #[serde(default)]
    pub is_compound: bool,
    #[serde(default)]
    pub is_non_recoverable: bool,
}

/// A tax rate; `TaxType` is its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaxRate {
    pub name: String,
    pub tax_type: String,
    pub tax_components: Vec<TaxComponent>,
    #[serde(default = "active")]
    pub status: String,
    #[serde(default)]
    pub report_tax_type: String,
    #[serde(default)]
    pub can_apply_to_assets: bool,
    #[serde(default)]
    pub can_apply_to_equity: bool,
    #[serde(default)]
    pub can_apply_to_expenses: bool,
    #[serde(default)]
    pub can_apply_to_liabilities: bool,
    #[serde(default)]
    pub can_apply_to_revenue: bool,
    #[serde(with = "decimal")]
    pub display_tax_rate: Decimal,
    #[serde(with = "decimal")]
    pub effective_rate: Decimal,
}

/// An enabled currency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Currency {
    pub code: String,
    #[serde(default)]
    pub description: String,
}

/// An option of a tracking category.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrackingOption {
    #[serde(rename = "TrackingOptionID", default = "Uuid::new_v4")]
    pub tracking_option_id: Uuid,
    pub name: String,
    #[serde(default = "active")]
    pub status: String,
}

/// A tracking category with its options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrackingCategory {
    #[serde(rename = "TrackingCategoryID", default = "Uuid::new_v4")]
    pub tracking_category_id: Uuid,
    pub name: String,
    #[serde(default = "active")]
    pub status: String,
    #[serde(default)]
    pub options: Vec<TrackingOption>,
}

/// A contact (customer or supplier).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contact {
    #[serde(rename = "ContactID", default = "Uuid::new_v4")]
    pub contact_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(default = "active")]
    pub contact_status: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<String>,
    /// Addresses hold only strings, so they are kept as sent.
    #[serde(default)]
    pub addresses: Vec<serde_json::Value>,
    #[serde(default)]
    pub phones: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact_persons: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_terms: Option<PaymentTerms>,
    #[serde(default)]
    pub is_supplier: bool,
    #[serde(default)]
    pub is_customer: bool,
    #[serde(default)]
    pub has_attachments: bool,
    #[serde(rename = "UpdatedDateUTC", with = "instant", default = "Utc::now")]
    pub updated_date_utc: DateTime<Utc>,
    #[serde(default)]
    pub has_validation_errors: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The contact as embedded in a document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactRef {
    #[serde(rename = "ContactID")]
    pub contact_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_number: Option<String>,
    pub name: String,
    #[serde(default)]
    pub contact_status: String,
    #[serde(default)]
    pub has_validation_errors: bool,
}

impl From<&Contact> for ContactRef {
    fn from(c: &Contact) -> Self {
        Self {
            contact_id: c.contact_id,
            contact_number: c.contact_number.clone(),
            name: c.name.clone(),
            contact_status: c.contact_status.clone(),
            has_validation_errors: false,
        }
    }
}

/// A tracking assignment on a line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LineTracking {
    #[serde(rename = "TrackingCategoryID")]
    pub tracking_category_id: Uuid,
    #[serde(rename = "TrackingOptionID")]
    pub tracking_option_id: Uuid,
    pub name: String,
    pub option: String,
}

/// A line of an invoice or credit note, with its computed amounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LineItem {
    #[serde(rename = "LineItemID")]
    pub line_item_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(with = "decimal")]
    pub quantity: Decimal,
    #[serde(with = "decimal")]
    pub unit_amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_code: Option<String>,
    #[serde(rename = "AccountID", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_type: Option<String>,
    #[serde(with = "decimal")]
    pub tax_amount: Decimal,
    #[serde(with = "decimal")]
    pub line_amount: Decimal,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub discount_rate: Option<Decimal>,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub discount_amount: Option<Decimal>,
    #[serde(default)]
    pub tracking: Vec<LineTracking>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<Message>,
}

/// A payment as embedded in an invoice or credit note.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentRef {
    #[serde(rename = "PaymentID")]
    pub payment_id: Uuid,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(with = "decimal")]
    pub amount: Decimal,
    #[serde(with = "decimal")]
    pub currency_rate: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub has_account: bool,
    pub has_validation_errors: bool,
}

/// A credit note as embedded in an invoice it was allocated to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditNoteRef {
    #[serde(rename = "CreditNoteID")]
    pub credit_note_id: Uuid,
    pub credit_note_number: String,
    #[serde(with = "decimal")]
    pub applied_amount: Decimal,
    #[serde(with = "decimal")]
    pub total: Decimal,
    #[serde(with = "day")]
    pub date: NaiveDate,
}

/// An invoice (`ACCREC` sales or `ACCPAY` bill).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "InvoiceID")]
    pub invoice_id: Uuid,
    pub invoice_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub contact: ContactRef,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    pub status: String,
    pub line_amount_types: String,
    pub line_items: Vec<LineItem>,
    #[serde(with = "decimal")]
    pub sub_total: Decimal,
    #[serde(with = "decimal")]
    pub total_tax: Decimal,
    #[serde(with = "decimal")]
    pub total: Decimal,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub total_discount: Option<Decimal>,
    pub currency_code: String,
    #[serde(with = "decimal")]
    pub currency_rate: Decimal,
    #[serde(with = "decimal")]
    pub amount_due: Decimal,
    #[serde(with = "decimal")]
    pub amount_paid: Decimal,
    #[serde(with = "decimal")]
    pub amount_credited: Decimal,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub fully_paid_on_date: Option<NaiveDate>,
    #[serde(default)]
    pub payments: Vec<PaymentRef>,
    #[serde(default)]
    pub credit_notes: Vec<CreditNoteRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub sent_to_contact: bool,
    #[serde(default)]
    pub is_discounted: bool,
    #[serde(default)]
    pub has_attachments: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_errors: bool,
    #[serde(rename = "UpdatedDateUTC", with = "instant")]
    pub updated_date_utc: DateTime<Utc>,
    #[serde(rename = "UpdatedDateUTCString", with = "iso")]
    pub updated_date_utc_string: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// An invoice as embedded in a payment or allocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvoiceRef {
    #[serde(rename = "InvoiceID")]
    pub invoice_id: Uuid,
    pub invoice_number: String,
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<Decimal>,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub amount_paid: Option<Decimal>,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
}

/// A credit-note allocation against an invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocation {
    #[serde(rename = "AllocationID")]
    pub allocation_id: Uuid,
    pub invoice: InvoiceRef,
    #[serde(with = "decimal")]
    pub amount: Decimal,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A credit note (`ACCRECCREDIT` or `ACCPAYCREDIT`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditNote {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "CreditNoteID")]
    pub credit_note_id: Uuid,
    pub credit_note_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub contact: ContactRef,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    pub status: String,
    pub line_amount_types: String,
    pub line_items: Vec<LineItem>,
    #[serde(with = "decimal")]
    pub sub_total: Decimal,
    #[serde(with = "decimal")]
    pub total_tax: Decimal,
    #[serde(with = "decimal")]
    pub total: Decimal,
    pub currency_code: String,
    #[serde(with = "decimal")]
    pub currency_rate: Decimal,
    #[serde(with = "decimal")]
    pub remaining_credit: Decimal,
    #[serde(with = "opt_day", default, skip_serializing_if = "Option::is_none")]
    pub fully_paid_on_date: Option<NaiveDate>,
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    #[serde(default)]
    pub payments: Vec<PaymentRef>,
    #[serde(default)]
    pub sent_to_contact: bool,
    #[serde(default)]
    pub has_attachments: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_errors: bool,
    #[serde(rename = "UpdatedDateUTC", with = "instant")]
    pub updated_date_utc: DateTime<Utc>,
    #[serde(rename = "UpdatedDateUTCString", with = "iso")]
    pub updated_date_utc_string: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A credit note as embedded in a refund payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditNoteLink {
    #[serde(rename = "CreditNoteID")]
    pub credit_note_id: Uuid,
    pub credit_note_number: String,
    #[serde(with = "opt_decimal", default, skip_serializing_if = "Option::is_none")]
    pub remaining_credit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The bank account a payment went through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountRef {
    #[serde(rename = "AccountID")]
    pub account_id: Uuid,
    pub code: String,
}

/// A payment against an invoice, or a refund of a credit note.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Payment {
    #[serde(rename = "PaymentID")]
    pub payment_id: Uuid,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(with = "decimal")]
    pub amount: Decimal,
    #[serde(with = "decimal")]
    pub bank_amount: Decimal,
    #[serde(with = "decimal")]
    pub currency_rate: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub is_reconciled: bool,
    pub status: String,
    pub payment_type: String,
    pub account: AccountRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_note: Option<CreditNoteLink>,
    /// Set when the payment belongs to a batch payment.
    #[serde(
        rename = "BatchPaymentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub batch_payment_id: Option<Uuid>,
    pub has_account: bool,
    #[serde(default)]
    pub has_validation_errors: bool,
    #[serde(rename = "UpdatedDateUTC", with = "instant")]
    pub updated_date_utc: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One bank-statement line paying several invoices (`RECBATCH` or `PAYBATCH`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchPayment {
    #[serde(rename = "BatchPaymentID")]
    pub batch_payment_id: Uuid,
    pub account: AccountRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(with = "day")]
    pub date: NaiveDate,
    #[serde(rename = "Type")]
    pub kind: String,
    pub status: String,
    #[serde(with = "decimal")]
    pub total_amount: Decimal,
    pub is_reconciled: bool,
    pub payments: Vec<Payment>,
    #[serde(rename = "UpdatedDateUTC", with = "instant")]
    pub updated_date_utc: DateTime<Utc>,
    #[serde(
        rename = "ValidationErrors",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub validation_errors: Vec<Message>,
}

/// `pagination` block of paged lists.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: usize,
    pub page_size: usize,
    pub page_count: usize,
    pub item_count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_terms_accept_xero_types_and_bound_the_day() {
        let t = |day, kind: &str| PaymentTerm {
            day,
            kind: kind.into(),
        };
        assert_eq!(t(20, "OFFOLLOWINGMONTH").problem(), None);
        assert_eq!(t(0, "DAYSAFTERBILLMONTH").problem(), None);
        assert_eq!(t(90, "DAYSAFTERBILLDATE").problem(), None);
        assert!(t(32, "OFCURRENTMONTH").problem().is_some());
        assert!(t(-1, "DAYSAFTERBILLDATE").problem().is_some());
        assert!(t(5, "NET30").problem().unwrap().contains("NET30"));
        let both = PaymentTerms {
            bills: Some(t(5, "OFCURRENTMONTH")),
            sales: Some(t(40, "OFFOLLOWINGMONTH")),
        };
        assert!(both.problem().unwrap().contains("between 0 and 31"));
        let json: PaymentTerms =
            serde_json::from_str(r#"{"Sales":{"Day":10,"Type":"DAYSAFTERBILLMONTH"}}"#).unwrap();
        assert_eq!(json.sales, Some(t(10, "DAYSAFTERBILLMONTH")));
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"Sales":{"Day":10,"Type":"DAYSAFTERBILLMONTH"}}"#
        );
    }
}
