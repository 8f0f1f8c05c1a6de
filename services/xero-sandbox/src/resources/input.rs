//! Request bodies as clients send them, and how a body splits into elements.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct ContactIn {
    #[serde(rename = "ContactID")]
    pub(super) contact_id: Option<Uuid>,
    pub(super) contact_number: Option<String>,
    pub(super) account_number: Option<String>,
    pub(super) contact_status: Option<String>,
    pub(super) name: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) email_address: Option<String>,
    pub(super) tax_number: Option<String>,
    pub(super) default_currency: Option<String>,
    pub(super) addresses: Option<Vec<Value>>,
    pub(super) phones: Option<Vec<Value>>,
    pub(super) contact_persons: Option<Vec<Value>>,
    pub(super) payment_terms: Option<PaymentTerms>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct TrackingIn {
    #[serde(rename = "TrackingCategoryID")]
    pub(super) tracking_category_id: Option<Uuid>,
    #[serde(rename = "TrackingOptionID")]
    pub(super) tracking_option_id: Option<Uuid>,
    pub(super) name: Option<String>,
    pub(super) option: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct LineIn {
    #[serde(rename = "LineItemID")]
    pub(super) line_item_id: Option<Uuid>,
    pub(super) description: Option<String>,
    #[serde(with = "opt_decimal")]
    pub(super) quantity: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub(super) unit_amount: Option<Decimal>,
    pub(super) item_code: Option<String>,
    pub(super) account_code: Option<String>,
    #[serde(rename = "AccountID")]
    pub(super) account_id: Option<Uuid>,
    pub(super) tax_type: Option<String>,
    #[serde(with = "opt_decimal")]
    pub(super) tax_amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub(super) line_amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub(super) discount_rate: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub(super) discount_amount: Option<Decimal>,
    pub(super) tracking: Option<Vec<TrackingIn>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct DocIn {
    #[serde(rename = "Type")]
    pub(super) kind: Option<String>,
    #[serde(rename = "InvoiceID")]
    pub(super) invoice_id: Option<Uuid>,
    #[serde(rename = "CreditNoteID")]
    pub(super) credit_note_id: Option<Uuid>,
    pub(super) invoice_number: Option<String>,
    pub(super) credit_note_number: Option<String>,
    pub(super) reference: Option<String>,
    pub(super) contact: Option<ContactIn>,
    pub(super) date: Option<String>,
    pub(super) due_date: Option<String>,
    pub(super) status: Option<String>,
    pub(super) line_amount_types: Option<String>,
    pub(super) line_items: Option<Vec<LineIn>>,
    pub(super) currency_code: Option<String>,
    #[serde(with = "opt_decimal")]
    pub(super) currency_rate: Option<Decimal>,
    pub(super) url: Option<String>,
    pub(super) sent_to_contact: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RefIn {
    #[serde(rename = "InvoiceID")]
    pub(super) invoice_id: Option<Uuid>,
    pub(super) invoice_number: Option<String>,
    #[serde(rename = "CreditNoteID")]
    pub(super) credit_note_id: Option<Uuid>,
    pub(super) credit_note_number: Option<String>,
    #[serde(rename = "AccountID")]
    pub(super) account_id: Option<Uuid>,
    pub(super) code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct PaymentIn {
    #[serde(rename = "PaymentID")]
    pub(super) payment_id: Option<Uuid>,
    pub(super) invoice: Option<RefIn>,
    pub(super) credit_note: Option<RefIn>,
    pub(super) invoice_number: Option<String>,
    pub(super) credit_note_number: Option<String>,
    pub(super) account: Option<RefIn>,
    pub(super) code: Option<String>,
    pub(super) date: Option<String>,
    #[serde(with = "opt_decimal")]
    pub(super) amount: Option<Decimal>,
    #[serde(with = "opt_decimal")]
    pub(super) currency_rate: Option<Decimal>,
    pub(super) reference: Option<String>,
    pub(super) is_reconciled: Option<bool>,
    pub(super) status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct AllocationIn {
    pub(super) invoice: Option<RefIn>,
    #[serde(with = "opt_decimal")]
    pub(super) amount: Option<Decimal>,
    pub(super) date: Option<String>,
}

/// Splits a body into its elements: `{"Key":[...]}`, `{"Key":{...}}`, a bare array or object.
pub(super) fn elements(body: &[u8], key: &str) -> Result<Vec<Box<RawValue>>, Resp> {
    let v: Box<RawValue> =
        serde_json::from_slice(body).map_err(|e| bad_request(&format!("Invalid JSON: {e}")))?;
    let text = v.get().trim_start();
    if text.starts_with('[') {
        return serde_json::from_str(v.get()).map_err(|e| bad_request(&e.to_string()));
    }
    let map: std::collections::HashMap<String, Box<RawValue>> =
        serde_json::from_str(v.get()).map_err(|e| bad_request(&e.to_string()))?;
    match map.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        Some((_, inner)) if inner.get().trim_start().starts_with('[') => {
            serde_json::from_str(inner.get()).map_err(|e| bad_request(&e.to_string()))
        }
        Some((_, inner)) => Ok(vec![inner]),
        None => Ok(vec![v]),
    }
}

pub(super) fn parse_el<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("The request could not be read: {e}"))
}

pub(super) fn bad_date(s: &Option<String>) -> Option<String> {
    match s {
        Some(d) if parse_day(d).is_none() => Some(format!("'{d}' is not a valid date")),
        _ => None,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct BatchPaymentIn {
    pub(super) account: Option<RefIn>,
    pub(super) date: Option<String>,
    pub(super) reference: Option<String>,
    pub(super) is_reconciled: Option<bool>,
    pub(super) status: Option<String>,
    pub(super) payments: Vec<PaymentIn>,
}
