//! The ledger: per order, what Xero confirmed (ids, version and mapping revision written,
//! payments, credit notes). Updated only after Xero confirms, by compare-and-set on the KV
//! revision, so two writers of one order never both win.

use async_nats::jetstream::kv;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One payment recorded in Xero.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PaymentEntry {
    /// Xero PaymentID.
    pub payment_id: String,
    /// Amount recorded.
    pub amount: Decimal,
}

/// One credit note for a refund.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CreditEntry {
    /// Xero CreditNoteID.
    pub credit_note_id: String,
    /// CreditNoteNumber.
    pub number: String,
    /// Total of the credit note.
    pub total: Decimal,
    /// Allocated to the invoice.
    pub allocated: Decimal,
    /// Paid back as a refund payment.
    pub refunded: Decimal,
    /// Allocation and refund are done.
    pub done: bool,
    /// The refund's payment method (the account a cash refund is paid from, should an
    /// allocation be undone after the refund event was settled).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
}

/// An invoice replaced because it lay in a locked period: credited in full, then re-issued.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Superseded {
    /// The old InvoiceID.
    pub invoice_id: String,
    /// Its InvoiceNumber.
    pub invoice_number: String,
    /// The credit note that cancels it.
    pub credit_note_id: String,
    /// Its CreditNoteNumber.
    pub credit_note_number: String,
    /// Amount credited.
    pub total: Decimal,
}

/// The ledger entry of one order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Xero ContactID.
    #[serde(default)]
    pub contact_id: String,
    /// Xero InvoiceID.
    #[serde(default)]
    pub invoice_id: String,
    /// InvoiceNumber.
    #[serde(default)]
    pub invoice_number: String,
    /// Hash of the invoice content last written (to tell a real change from a redelivery).
    #[serde(default)]
    pub content_hash: String,
    /// Invoice status as Xero last reported it (empty in entries older than this field:
    /// AUTHORISED).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Invoice date written (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub date: String,
    /// Invoice total as Xero computed it.
    #[serde(default)]
    pub total: Decimal,
    /// Order version fully converged.
    #[serde(default)]
    pub version: u64,
    /// Mapping revision of that write.
    #[serde(default)]
    pub mapping_revision: String,
    /// Source payment id → what Xero recorded.
    #[serde(default)]
    pub payments: BTreeMap<String, PaymentEntry>,
    /// Source payment ids sent without a confirmed answer: look them up before paying again.
    #[serde(default)]
    pub payments_in_flight: Vec<String>,
    /// Source payment id → how many times it was applied again after Xero lost it (a repair):
    /// its reference carries the round, so Xero's idempotency does not hand back the lost one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payment_rounds: BTreeMap<String, u32>,
    /// Payments deleted in Xero so a cancelled order's invoice could be voided.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed_payments: BTreeMap<String, PaymentEntry>,
    /// Earlier invoices of the order, replaced after a change in a locked period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Superseded>,
    /// Refund id → credit note.
    #[serde(default)]
    pub credit_notes: BTreeMap<String, CreditEntry>,
    /// The invoice was voided.
    #[serde(default)]
    pub voided: bool,
    /// The order predates the go-live date: nothing is written for it.
    #[serde(default)]
    pub before_start: bool,
    /// Version sent to review (a person decides); later redeliveries of it are not reviewed again.
    #[serde(default)]
    pub reviewed_version: u64,
}

impl Entry {
    /// The order's first invoice number (reissues are `<it>-R<k>`); `current` when none was
    /// superseded yet.
    pub fn original_number<'a>(&'a self, current: &'a str) -> &'a str {
        self.superseded
            .first()
            .map_or(current, |s| s.invoice_number.as_str())
    }

    /// The reference a payment of the order carries in Xero: the invoice number and the
    /// store's payment id, and the round when it was applied again.
    pub fn payment_reference(&self, source_id: &str) -> String {
        let base = crate::compose::payment_reference(&self.invoice_number, source_id);
        match self.payment_rounds.get(source_id) {
            Some(n) if *n > 0 => format!("{base} #{}", n + 1),
            _ => base,
        }
    }

    /// The invoice is a draft awaiting approval in Xero (as last seen).
    pub fn is_draft(&self) -> bool {
        self.status == "DRAFT" || self.status == "SUBMITTED"
    }

    /// Sum of payments recorded.
    pub fn paid(&self) -> Decimal {
        self.payments.values().map(|p| p.amount).sum()
    }

    /// Sum of credit allocated to the invoice.
    pub fn credited(&self) -> Decimal {
        self.credit_notes.values().map(|c| c.allocated).sum()
    }

    /// What is still owing on the invoice.
    pub fn amount_due(&self) -> Decimal {
        (self.total - self.paid() - self.credited()).max(Decimal::ZERO)
    }
}

/// KV key of an order: `<tenant>.<store>.<order id or its hash>`.
pub fn key(tenant: &str, store: &str, order_id: &str) -> String {
    let clean = !order_id.is_empty()
        && order_id.len() <= 128
        && order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let id = if clean {
        order_id.to_owned()
    } else {
        format!(
            "h{}",
            &ledgerline_xero_client::hex(&Sha256::digest(order_id.as_bytes()))[..40]
        )
    };
    format!("{tenant}.{store}.{id}")
}

/// An entry with the revision it was read at (0: no entry yet).
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    /// The entry.
    pub entry: Entry,
    /// KV revision (0 when absent).
    pub revision: u64,
}

/// Reads an entry.
pub async fn read(kv: &kv::Store, key: &str) -> Result<Versioned, String> {
    match kv.entry(key).await {
        Ok(Some(e)) if e.operation == kv::Operation::Put => Ok(Versioned {
            entry: serde_json::from_slice(&e.value).map_err(|e| e.to_string())?,
            revision: e.revision,
        }),
        Ok(Some(e)) => Ok(Versioned {
            entry: Entry::default(),
            revision: e.revision,
        }),
        Ok(None) => Ok(Versioned::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes an entry if nobody else did since `v.revision`; updates the revision on success.
pub async fn write(kv: &kv::Store, key: &str, v: &mut Versioned) -> Result<(), String> {
    let bytes = serde_json::to_vec(&v.entry).map_err(|e| e.to_string())?;
    let rev = if v.revision == 0 {
        kv.create(key, bytes.into())
            .await
            .map_err(|e| e.to_string())?
    } else {
        kv.update(key, bytes.into(), v.revision)
            .await
            .map_err(|e| e.to_string())?
    };
    v.revision = rev;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kv_safe() {
        assert_eq!(key("t", "main", "ORD-1"), "t.main.ORD-1");
        let k = key("t", "main", "a b/c");
        assert!(k.starts_with("t.main.h") && !k.contains(' '));
    }
}
