//! What we send: request elements, and the `{"<Collection>": [...]}` envelope around them.
//!
//! Amounts are written as JSON numbers from the decimal's own text
//! (`ledgerline_platform::json::decimal`).

use ledgerline_platform::json::{decimal, opt_decimal};
use rust_decimal::Decimal;
use serde::Serialize;

/// `{"<key>": [items]}`, the body of a batched write.
pub fn envelope<T: Serialize>(key: &str, items: &[T]) -> Vec<u8> {
    let parts: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap_or_default())
        .collect();
    format!("{{\"{key}\":[{}]}}", parts.join(",")).into_bytes()
}

/// An invoice or credit note.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    /// ACCREC or ACCRECCREDIT.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Set on updates.
    #[serde(rename = "InvoiceID", skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<String>,
    /// Contact.
    pub contact: ContactRef,
    /// InvoiceNumber (invoices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    /// CreditNoteNumber (credit notes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_note_number: Option<String>,
    /// Reference.
    pub reference: String,
    /// Date.
    pub date: String,
    /// DueDate (invoices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// Exclusive or Inclusive.
    pub line_amount_types: String,
    /// AUTHORISED or DRAFT; empty (left out) on an update that keeps Xero's status.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Lines.
    pub line_items: Vec<Line>,
    /// Currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
}

/// A document's line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Line {
    /// Description.
    pub description: String,
    /// Quantity.
    #[serde(with = "decimal")]
    pub quantity: Decimal,
    /// Unit amount.
    #[serde(with = "decimal")]
    pub unit_amount: Decimal,
    /// Discount amount.
    #[serde(with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub discount_amount: Option<Decimal>,
    /// AccountCode.
    pub account_code: String,
    /// TaxType.
    pub tax_type: String,
    /// Tracking (at most 2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<Tracking>,
}

/// A line's tracking value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tracking {
    /// Category.
    pub name: String,
    /// Option.
    pub option: String,
}

/// `{"ContactID": ..}`.
#[derive(Debug, Clone, Serialize)]
pub struct ContactRef {
    /// ContactID.
    #[serde(rename = "ContactID")]
    pub contact_id: String,
}

/// `{"InvoiceID": ..}`.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceRef {
    /// InvoiceID.
    #[serde(rename = "InvoiceID")]
    pub invoice_id: String,
}

/// `{"CreditNoteID": ..}`.
#[derive(Debug, Clone, Serialize)]
pub struct CreditNoteRef {
    /// CreditNoteID.
    #[serde(rename = "CreditNoteID")]
    pub credit_note_id: String,
}

/// `{"Code": ..}`.
#[derive(Debug, Clone, Serialize)]
pub struct AccountRef {
    /// Code.
    #[serde(rename = "Code")]
    pub code: String,
}

/// A payment on an invoice, or a refund out of a credit note.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Payment {
    /// The invoice paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceRef>,
    /// The credit note refunded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_note: Option<CreditNoteRef>,
    /// The account paid into (or out of).
    pub account: AccountRef,
    /// Date.
    pub date: String,
    /// Amount.
    #[serde(with = "decimal")]
    pub amount: Decimal,
    /// Reference (how it is found again).
    pub reference: String,
}

/// Credit allocated from a credit note to an invoice.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocation {
    /// The invoice credited.
    pub invoice: InvoiceRef,
    /// Amount.
    #[serde(with = "decimal")]
    pub amount: Decimal,
    /// Date.
    pub date: String,
}

/// A contact's address. Fields are in the order a JSON object of them sorts in, so an address
/// serializes as it did when it was built as one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Address {
    /// AddressLine1.
    #[serde(rename = "AddressLine1", skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    /// AddressLine2.
    #[serde(rename = "AddressLine2", skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// AddressLine3.
    #[serde(rename = "AddressLine3", skip_serializing_if = "Option::is_none")]
    pub line3: Option<String>,
    /// AddressLine4.
    #[serde(rename = "AddressLine4", skip_serializing_if = "Option::is_none")]
    pub line4: Option<String>,
    /// STREET or POBOX.
    #[serde(rename = "AddressType")]
    pub kind: String,
    /// City.
    #[serde(rename = "City")]
    pub city: String,
    /// Country.
    #[serde(rename = "Country")]
    pub country: String,
    /// PostalCode.
    #[serde(rename = "PostalCode")]
    pub postal_code: String,
    /// Region.
    #[serde(rename = "Region")]
    pub region: String,
}

/// A document's new status (`VOIDED`, `DELETED`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    /// InvoiceID.
    #[serde(rename = "InvoiceID")]
    pub invoice_id: String,
    /// Status.
    #[serde(rename = "Status")]
    pub status: String,
}

/// A contact's new status (`ACTIVE` restores an archived one).
#[derive(Debug, Clone, Serialize)]
pub struct ContactStatus {
    /// ContactID.
    #[serde(rename = "ContactID")]
    pub contact_id: String,
    /// ContactStatus.
    #[serde(rename = "ContactStatus")]
    pub contact_status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn money_is_written_as_exact_json_numbers() {
        let p = Payment {
            invoice: Some(InvoiceRef {
                invoice_id: "i".into(),
            }),
            credit_note: None,
            account: AccountRef { code: "090".into() },
            date: "2026-01-02".into(),
            amount: Decimal::from_str("39.1304").unwrap(),
            reference: "r".into(),
        };
        let s = String::from_utf8(envelope("Payments", &[p])).unwrap();
        assert_eq!(
            s,
            r#"{"Payments":[{"Invoice":{"InvoiceID":"i"},"Account":{"Code":"090"},"Date":"2026-01-02","Amount":39.1304,"Reference":"r"}]}"#
        );
    }

    #[test]
    fn an_address_keeps_the_shape_it_had_as_a_json_object() {
        let a = Address {
            line1: Some("1 Queen St".into()),
            kind: "STREET".into(),
            city: "Auckland".into(),
            country: "New Zealand".into(),
            postal_code: "1010".into(),
            region: "Auckland".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"AddressLine1":"1 Queen St","AddressType":"STREET","City":"Auckland","Country":"New Zealand","PostalCode":"1010","Region":"Auckland"}"#
        );
    }
}
