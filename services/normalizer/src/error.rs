//! Why a raw event could not be normalised, in the contract's reason classes.

use ledgerline_contract::v1::ReasonClass;

/// A transform failure. Every variant is permanent for the input as it is: the event goes to the
/// DLQ with the matching reason class (a mapping fix or a replay can bring it back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// Not parseable: bad JSON, or a required field missing or of the wrong type.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Parseable but breaks the contract: totals that do not add up, unknown currency, ...
    #[error("invalid: {0}")]
    Invalid(String),
    /// An event type outside the closed list, or another `api_version`.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The mapping has no rule for this input (a tax code, a status, a currency).
    #[error("mapping: {0}")]
    Mapping(String),
}

impl TransformError {
    /// The DLQ reason class.
    pub fn reason(&self) -> ReasonClass {
        match self {
            Self::Malformed(_) => ReasonClass::Malformed,
            Self::Invalid(_) => ReasonClass::Invalid,
            Self::Unsupported(_) => ReasonClass::Unsupported,
            Self::Mapping(_) => ReasonClass::Mapping,
        }
    }

    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Invalid(_) => "invalid",
            Self::Unsupported(_) => "unsupported",
            Self::Mapping(_) => "mapping",
        }
    }
}
