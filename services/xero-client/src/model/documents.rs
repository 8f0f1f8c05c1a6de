//! Invoices, credit notes, their lines, payments and allocations, as Xero answers them.

use super::ValidationError;
use ledgerline_platform::json::opt_decimal;
use rust_decimal::Decimal;
use serde::Deserialize;

/// An invoice (also the `Invoice` inside a payment or an allocation, with fewer fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Invoice {
    /// InvoiceID.
    #[serde(rename = "InvoiceID")]
    #[serde(deserialize_with = "super::nullable")]
    pub invoice_id: String,
    /// InvoiceNumber.
    #[serde(deserialize_with = "super::nullable")]
    pub invoice_number: String,
    /// ACCREC or ACCPAY.
    #[serde(rename = "Type")]
    #[serde(deserialize_with = "super::nullable")]
    pub kind: String,
    /// DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED, DELETED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// Reference.
    #[serde(deserialize_with = "super::nullable")]
    pub reference: String,
    /// CurrencyCode.
    #[serde(deserialize_with = "super::nullable")]
    pub currency_code: String,
    /// Exclusive, Inclusive or NoTax.
    #[serde(deserialize_with = "super::nullable")]
    pub line_amount_types: String,
    /// Total.
    #[serde(with = "opt_decimal")]
    pub total: Option<Decimal>,
    /// TotalTax.
    #[serde(with = "opt_decimal")]
    pub total_tax: Option<Decimal>,
    /// AmountDue.
    #[serde(with = "opt_decimal")]
    pub amount_due: Option<Decimal>,
    /// AmountPaid.
    #[serde(with = "opt_decimal")]
    pub amount_paid: Option<Decimal>,
    /// AmountCredited.
    #[serde(with = "opt_decimal")]
    pub amount_credited: Option<Decimal>,
    /// CurrencyRate: units of the invoice's currency per unit of the base currency.
    #[serde(with = "opt_decimal")]
    pub currency_rate: Option<Decimal>,
    /// LineItems.
    #[serde(deserialize_with = "super::nullable")]
    pub line_items: Vec<LineItem>,
    /// Payments on it.
    #[serde(deserialize_with = "super::nullable")]
    pub payments: Vec<Payment>,
    /// UpdatedDateUTC, as Xero writes it (`/Date(1573755038314+0000)/`): see
    /// [`super::xero_date`].
    #[serde(rename = "UpdatedDateUTC", deserialize_with = "super::nullable")]
    pub updated_date_utc: String,
    /// StatusAttributeString (write answers).
    pub status_attribute_string: Option<String>,
    /// ValidationErrors (write answers).
    #[serde(deserialize_with = "super::nullable")]
    pub validation_errors: Vec<ValidationError>,
}

/// A document's line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LineItem {
    /// Description.
    #[serde(deserialize_with = "super::nullable")]
    pub description: String,
    /// Quantity.
    #[serde(with = "opt_decimal")]
    pub quantity: Option<Decimal>,
    /// UnitAmount.
    #[serde(with = "opt_decimal")]
    pub unit_amount: Option<Decimal>,
    /// LineAmount.
    #[serde(with = "opt_decimal")]
    pub line_amount: Option<Decimal>,
    /// AccountCode.
    #[serde(deserialize_with = "super::nullable")]
    pub account_code: String,
    /// TaxType.
    #[serde(deserialize_with = "super::nullable")]
    pub tax_type: String,
    /// Tracking.
    #[serde(deserialize_with = "super::nullable")]
    pub tracking: Vec<TrackingRef>,
}

/// A line's tracking value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TrackingRef {
    /// The category's name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// The option's name.
    #[serde(deserialize_with = "super::nullable")]
    pub option: String,
}

/// A credit note.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreditNote {
    /// CreditNoteID.
    #[serde(rename = "CreditNoteID")]
    #[serde(deserialize_with = "super::nullable")]
    pub credit_note_id: String,
    /// CreditNoteNumber.
    #[serde(deserialize_with = "super::nullable")]
    pub credit_note_number: String,
    /// Status.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// Total.
    #[serde(with = "opt_decimal")]
    pub total: Option<Decimal>,
    /// RemainingCredit.
    #[serde(with = "opt_decimal")]
    pub remaining_credit: Option<Decimal>,
    /// Allocations from it.
    #[serde(deserialize_with = "super::nullable")]
    pub allocations: Vec<Allocation>,
    /// Refunds paid out of it.
    #[serde(deserialize_with = "super::nullable")]
    pub payments: Vec<Payment>,
    /// UpdatedDateUTC (see [`super::xero_date`]).
    #[serde(rename = "UpdatedDateUTC", deserialize_with = "super::nullable")]
    pub updated_date_utc: String,
    /// StatusAttributeString (write answers).
    pub status_attribute_string: Option<String>,
    /// ValidationErrors (write answers).
    #[serde(deserialize_with = "super::nullable")]
    pub validation_errors: Vec<ValidationError>,
}

/// A payment on an invoice, or a refund paid out of a credit note.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Payment {
    /// PaymentID.
    #[serde(rename = "PaymentID")]
    #[serde(deserialize_with = "super::nullable")]
    pub payment_id: String,
    /// Amount.
    #[serde(with = "opt_decimal")]
    pub amount: Option<Decimal>,
    /// Reference.
    #[serde(deserialize_with = "super::nullable")]
    pub reference: String,
    /// AUTHORISED or DELETED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// The account the payment was made to.
    pub account: Option<AccountRef>,
    /// UpdatedDateUTC (see [`super::xero_date`]).
    #[serde(rename = "UpdatedDateUTC", deserialize_with = "super::nullable")]
    pub updated_date_utc: String,
    /// The invoice paid, as it stands after the payment.
    pub invoice: Option<Box<Invoice>>,
    /// The credit note refunded.
    pub credit_note: Option<Box<CreditNote>>,
    /// StatusAttributeString (write answers).
    pub status_attribute_string: Option<String>,
    /// ValidationErrors (write answers).
    #[serde(deserialize_with = "super::nullable")]
    pub validation_errors: Vec<ValidationError>,
}

/// An account as a payment names it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AccountRef {
    /// Code.
    #[serde(deserialize_with = "super::nullable")]
    pub code: String,
}

/// Credit allocated from a credit note to an invoice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    /// AllocationID.
    #[serde(rename = "AllocationID")]
    #[serde(deserialize_with = "super::nullable")]
    pub allocation_id: String,
    /// Amount.
    #[serde(with = "opt_decimal")]
    pub amount: Option<Decimal>,
    /// The invoice credited.
    pub invoice: Option<Box<Invoice>>,
    /// True once deleted.
    #[serde(deserialize_with = "super::nullable")]
    pub is_deleted: bool,
    /// StatusAttributeString (write answers).
    pub status_attribute_string: Option<String>,
    /// ValidationErrors (write answers).
    #[serde(deserialize_with = "super::nullable")]
    pub validation_errors: Vec<ValidationError>,
}

impl Allocation {
    /// True when it is live and credits `invoice_id`.
    pub fn credits(&self, invoice_id: &str) -> bool {
        !self.is_deleted
            && self
                .invoice
                .as_ref()
                .is_some_and(|i| i.invoice_id.eq_ignore_ascii_case(invoice_id))
    }
}
