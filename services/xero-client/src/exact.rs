//! Xero's amounts, exactly: the error for one that cannot be read.
//!
//! Answers are parsed from their text into [`crate::model`] types whose amounts are read from
//! the number's own digits (`ledgerline_platform::json`), so no amount passes through `f64`
//! (the workspace keeps serde_json's `arbitrary_precision` off). An amount that is missing
//! where the caller needs it, or not a number, is an [`AmountError`], never 0.

/// An amount in a Xero response that is missing or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable amount {field}: {why}")]
pub struct AmountError {
    /// The field, e.g. `Total` or `Invoice.AmountDue`.
    pub field: String,
    /// What was there instead.
    pub why: String,
}
