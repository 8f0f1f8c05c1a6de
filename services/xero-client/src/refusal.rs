//! The one place that reads Xero's refusal wording. Callers match on [`Refusal`]; no other
//! code looks for substrings in Xero's messages.
//!
//! Call-level outcomes (rate limited, authorisation lost, 5xx, reset, timeout) are
//! [`crate::XeroError`]; the client waits out a 429 itself (`Retry-After`, in the shared budget),
//! so callers never see one. A refusal is what Xero said about a request or one element of a
//! batch, and it keeps Xero's message for the operator.

/// Why Xero refused a document (an element of a batch, or a whole request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another active contact has this name ("... is already assigned to another contact").
    DuplicateContactName(String),
    /// Another contact has this ContactNumber.
    DuplicateContactNumber(String),
    /// The InvoiceNumber or CreditNoteNumber exists ("... # must be unique").
    DuplicateDocumentNumber(String),
    /// The contact is archived: documents cannot be created or updated for it.
    ArchivedContact(String),
    /// The document date lies on or before the organisation's period lock date.
    PeriodLocked(String),
    /// The document has payments or credit allocated, so it cannot be edited.
    HasPaymentsOrCredit(String),
    /// The document's status does not allow the change ("not of valid status for
    /// modification": already voided, deleted or paid).
    InvalidStatus(String),
    /// Only AUTHORISED documents take payments and allocations (the document is a draft).
    NotAuthorised(String),
    /// The payment (or document) was deleted already.
    AlreadyDeleted(String),
    /// An AccountCode the organisation does not have (or cannot use here); the code, if named.
    UnknownAccountCode {
        /// The code Xero named.
        code: Option<String>,
        /// Xero's message.
        message: String,
    },
    /// A TaxType the organisation does not have (or cannot use here); the type, if named.
    UnknownTaxType {
        /// The tax type Xero named.
        tax_type: Option<String>,
        /// Xero's message.
        message: String,
    },
    /// A currency the organisation has not enabled.
    CurrencyNotEnabled(String),
    /// Any other validation error; the field, when Xero's message names a known one.
    Validation {
        /// The field the message is about, e.g. `Date`, `ContactNumber`.
        field: Option<String>,
        /// Xero's message.
        message: String,
    },
}

/// The first `'quoted'` value in a message.
fn quoted(message: &str) -> Option<String> {
    let v = message.split('\'').nth(1)?;
    (!v.is_empty()).then(|| v.to_owned())
}

/// Fields Xero's validation messages name, as they appear in them.
const FIELDS: &[(&str, &str)] = &[
    ("contact number", "ContactNumber"),
    ("contact name", "Name"),
    ("date", "Date"),
    ("due date", "DueDate"),
    ("description", "Description"),
    ("currencyrate", "CurrencyRate"),
    ("amount", "Amount"),
    ("reference", "Reference"),
];

impl Refusal {
    /// Classifies Xero's message (or several, joined with `"; "`): the first rule that matches
    /// wins, most specific first.
    pub fn classify(message: &str) -> Self {
        let m = message.to_owned();
        let lower = message.to_ascii_lowercase();
        // A taken ContactNumber decides (the contact is ours: adopt it), even when Xero also
        // says the name is taken, as it does when both are.
        if lower.contains("another contact has this contact number") {
            Self::DuplicateContactNumber(m)
        } else if lower.contains("already assigned to another contact") {
            Self::DuplicateContactName(m)
        } else if lower.contains("# must be unique") {
            Self::DuplicateDocumentNumber(m)
        } else if lower.contains("has been archived") {
            Self::ArchivedContact(m)
        } else if lower.contains("lock date") {
            Self::PeriodLocked(m)
        } else if lower.contains("cannot be edited as it has a payment") {
            Self::HasPaymentsOrCredit(m)
        } else if lower.contains("valid status") {
            Self::InvalidStatus(m)
        } else if lower.contains("already been deleted") {
            Self::AlreadyDeleted(m)
        } else if lower.contains("authorised") {
            Self::NotAuthorised(m)
        } else if lower.contains("account code") {
            Self::UnknownAccountCode {
                code: quoted(message),
                message: m,
            }
        } else if lower.contains("taxtype") || lower.contains("tax type") {
            Self::UnknownTaxType {
                tax_type: quoted(message),
                message: m,
            }
        } else if lower.contains("currency code") || lower.contains("currency is not") {
            Self::CurrencyNotEnabled(m)
        } else {
            let field = FIELDS
                .iter()
                .filter(|(words, _)| lower.contains(words))
                .max_by_key(|(words, _)| words.len())
                .map(|(_, f)| (*f).to_owned());
            Self::Validation { field, message: m }
        }
    }

    /// Xero's message, for the operator.
    pub fn message(&self) -> &str {
        match self {
            Self::DuplicateContactName(m)
            | Self::DuplicateContactNumber(m)
            | Self::DuplicateDocumentNumber(m)
            | Self::ArchivedContact(m)
            | Self::PeriodLocked(m)
            | Self::HasPaymentsOrCredit(m)
            | Self::InvalidStatus(m)
            | Self::NotAuthorised(m)
            | Self::AlreadyDeleted(m)
            | Self::CurrencyNotEnabled(m) => m,
            Self::UnknownAccountCode { message, .. }
            | Self::UnknownTaxType { message, .. }
            | Self::Validation { message, .. } => message,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&Refusal) -> bool;

    /// Xero's wording (as the sandbox reproduces it) for every variant.
    #[test]
    fn xeros_messages_classify() {
        let cases: &[(&str, Check)] = &[
            (
                "The contact name Ana Lee is already assigned to another contact. The contact name must be unique across all active contacts.",
                |r| matches!(r, Refusal::DuplicateContactName(_)),
            ),
            (
                "Another contact has this contact number. The contact number must be unique.",
                |r| matches!(r, Refusal::DuplicateContactNumber(_)),
            ),
            (
                "The contact name Ana Lee (ana@example.com) is already assigned to another contact. The contact name must be unique across all active contacts.; Another contact has this contact number. The contact number must be unique.",
                |r| matches!(r, Refusal::DuplicateContactNumber(_)),
            ),
            ("Invoice # must be unique.", |r| {
                matches!(r, Refusal::DuplicateDocumentNumber(_))
            }),
            ("Credit Note # must be unique.", |r| {
                matches!(r, Refusal::DuplicateDocumentNumber(_))
            }),
            (
                "The contact 'Ana Lee' has been archived. Documents cannot be created or updated for archived contacts.",
                |r| matches!(r, Refusal::ArchivedContact(_)),
            ),
            (
                "The document date cannot be before the period lock date, 31 Oct 2026",
                |r| matches!(r, Refusal::PeriodLocked(_)),
            ),
            (
                "This document cannot be edited as it has a payment or credit note allocated to it.",
                |r| matches!(r, Refusal::HasPaymentsOrCredit(_)),
            ),
            ("Invoice not of valid status for modification", |r| {
                matches!(r, Refusal::InvalidStatus(_))
            }),
            (
                "Payments can only be made against Authorised documents.",
                |r| matches!(r, Refusal::NotAuthorised(_)),
            ),
            ("This payment has already been deleted", |r| {
                matches!(r, Refusal::AlreadyDeleted(_))
            }),
            (
                "Account code '999' is not a valid code for this document.",
                |r| matches!(r, Refusal::UnknownAccountCode { code: Some(c), .. } if c == "999"),
            ),
            (
                "The TaxType code 'OUTPUT9' does not exist or cannot be used for this type of transaction.",
                |r| matches!(r, Refusal::UnknownTaxType { tax_type: Some(t), .. } if t == "OUTPUT9"),
            ),
            ("'XYZ' is not a valid currency code", |r| {
                matches!(r, Refusal::CurrencyNotEnabled(_))
            }),
            (
                "The contact number must be 50 characters or fewer",
                |r| matches!(r, Refusal::Validation { field: Some(f), .. } if f == "ContactNumber"),
            ),
            (
                "'2026-13-01' is not a valid date",
                |r| matches!(r, Refusal::Validation { field: Some(f), .. } if f == "Date"),
            ),
        ];
        for (message, is) in cases {
            let r = Refusal::classify(message);
            assert!(is(&r), "{message:?} classified as {r:?}");
            assert_eq!(r.message(), *message, "Xero's message is kept");
        }
    }

    #[test]
    fn elements_are_refused_or_not() {
        use crate::model::{Element, parse};
        let r = parse(
            r#"{"Invoices":[{"InvoiceID":"x","StatusAttributeString":"OK"},
            {"StatusAttributeString":"ERROR","ValidationErrors":[{"Message":"Invoice # must be unique."}]},
            {"StatusAttributeString":"ERROR"}]}"#,
        )
        .unwrap();
        assert_eq!(r.invoices[0].refusal(), None);
        assert!(matches!(
            r.invoices[1].refusal(),
            Some(Refusal::DuplicateDocumentNumber(_))
        ));
        assert!(matches!(
            r.invoices[2].refusal(),
            Some(Refusal::Validation { field: None, .. })
        ));
    }
}
