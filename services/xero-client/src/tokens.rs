//! Where a tenant's access tokens come from.

use crate::credentials::ClientCredentials;
use crate::endpoint::Endpoint;
use crate::error::XeroError;
use crate::oauth::Connection;
use std::sync::Arc;

/// A tenant's token source: the app's client credentials, or an authorization_code grant kept
/// fresh by refresh (stored by `xero-writer connect`).
#[derive(Debug)]
pub enum TokenSource {
    /// client_credentials.
    ClientCredentials(Box<ClientCredentials>),
    /// authorization_code + refresh_token, with the tenant's connection state.
    AuthorizationCode(Arc<Connection>),
}

impl TokenSource {
    /// A usable access token; `rejected` is the one Xero just answered 401 to.
    pub async fn access_token(
        &self,
        endpoint: &Endpoint,
        rejected: Option<&str>,
    ) -> Result<String, XeroError> {
        match self {
            Self::ClientCredentials(c) => c.access_token(endpoint, rejected).await,
            Self::AuthorizationCode(c) => c.access_token(endpoint, rejected).await,
        }
    }

    /// False while an authorization_code tenant is paused for want of a usable grant.
    pub fn is_connected(&self) -> bool {
        match self {
            Self::ClientCredentials(_) => true,
            Self::AuthorizationCode(c) => c.is_connected(),
        }
    }

    /// The grant's connection, for authorization_code.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        match self {
            Self::ClientCredentials(_) => None,
            Self::AuthorizationCode(c) => Some(c),
        }
    }
}
