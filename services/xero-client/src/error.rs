//! What a failed Xero call means for the caller.

/// Why a call did not produce a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum XeroError {
    /// Try again later: 5xx, connection trouble, timeout (the request may have been applied),
    /// the breaker is open, or we are stopping.
    #[error("transient: {0}")]
    Transient(String),
    /// Xero refused the request as a whole (400); retrying the same request cannot help.
    #[error("validation: {0}")]
    Validation(String),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 401/403 after a fresh token: the connection is revoked or the tenant is wrong.
    #[error("authorisation: {0}")]
    Auth(String),
}

/// An unreadable amount in an answer is worth another try (Xero, or the sandbox, may answer
/// readably next time); it is never read as 0.
impl From<crate::AmountError> for XeroError {
    fn from(e: crate::AmountError) -> Self {
        Self::Transient(e.to_string())
    }
}

impl XeroError {
    /// True when the same work can succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Auth(_))
    }

    /// What Xero's refusal of the whole request means, for a [`XeroError::Validation`].
    pub fn refusal(&self) -> Option<crate::Refusal> {
        match self {
            Self::Validation(text) => Some(crate::Refusal::classify(text)),
            _ => None,
        }
    }
}
