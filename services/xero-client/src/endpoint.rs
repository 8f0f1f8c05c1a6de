//! Where Xero is and who we are: the API and identity URLs, the app's credentials, and the one
//! token request every grant goes through.

use crate::credentials::StoredToken;
use crate::error::XeroError;
use crate::oauth::TokenSet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Connection settings shared by every tenant's client.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// HTTP client.
    pub http: reqwest::Client,
    /// Accounting API base URL.
    pub api_url: String,
    /// Identity base URL.
    pub identity_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Scopes a client_credentials token asks for (space-separated; empty: the connection's
    /// own). A Custom Connection made from 29 April 2026 refuses broad ones.
    pub scopes: String,
}

/// What the token endpoint answers, for every grant.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: i64,
    #[serde(default)]
    scope: String,
}

/// Form-encodes `pairs` (`application/x-www-form-urlencoded`).
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse("http://form.invalid/").expect("a static URL parses");
    u.query_pairs_mut().extend_pairs(pairs);
    u.query().unwrap_or_default().to_owned()
}

impl Endpoint {
    /// The one token request, at `<identity>/connect/token`. A 5xx, a 429 (the identity
    /// service's own rate limit) and a lost answer are [`XeroError::Transient`]: the grant is
    /// fine, so the tenant is not marked disconnected. Any other refusal is [`XeroError::Auth`]
    /// with Xero's `error` code (`invalid_grant`, `invalid_client`, ...; the body carries no
    /// secret).
    async fn token_request(&self, pairs: &[(&str, &str)]) -> Result<TokenResponse, XeroError> {
        let grant = pairs
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map_or("", |(_, v)| *v)
            .to_owned();
        let resp = self
            .http
            .post(format!("{}/connect/token", self.identity_url))
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| XeroError::Transient(format!("token request: {e}")))?;
        let status = resp.status();
        metrics::counter!("xero_client_calls_total", "endpoint" => "/connect/token", "status" => status.as_u16().to_string()).increment(1);
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(XeroError::Transient(format!("token endpoint {status}")));
        }
        let text = resp
            .text()
            .await
            .map_err(|e| XeroError::Transient(format!("token response: {e}")))?;
        if !status.is_success() {
            let error = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            if error == "invalid_scope" {
                return Err(XeroError::Auth(format!(
                    "{grant}: invalid_scope. {}",
                    crate::plan::INVALID_SCOPE_HELP
                )));
            }
            return Err(XeroError::Auth(format!("{grant}: {error}")));
        }
        serde_json::from_str(&text)
            .map_err(|e| XeroError::Transient(format!("token response: {e}")))
    }

    /// A client_credentials token (for `tenant`, a sandbox extension Xero ignores).
    pub(crate) async fn client_credentials(
        &self,
        tenant: Option<&str>,
    ) -> Result<StoredToken, XeroError> {
        // No refresh token for a Custom Connection, so no offline_access.
        let scopes: Vec<&str> = self
            .scopes
            .split_whitespace()
            .filter(|s| *s != "offline_access")
            .collect();
        let scope = scopes.join(" ");
        let mut pairs = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            pairs.push(("scope", scope.as_str()));
        }
        if let Some(t) = tenant {
            pairs.push(("tenant_id", t));
        }
        let r = self.token_request(&pairs).await?;
        Ok(StoredToken {
            access_token: r.access_token,
            expires_at: chrono::Utc::now().timestamp() + r.expires_in,
            lifetime: r.expires_in,
        })
    }

    /// A grant that answers a refresh token (`authorization_code` or `refresh_token`). Xero's
    /// refusals (`invalid_grant`: revoked, expired or reused) are [`XeroError::Auth`].
    pub async fn grant(&self, pairs: &[(&str, &str)]) -> Result<TokenSet, XeroError> {
        let r = self.token_request(pairs).await?;
        let Some(refresh_token) = r.refresh_token else {
            let grant = pairs
                .iter()
                .find(|(k, _)| *k == "grant_type")
                .map_or("", |(_, v)| *v);
            return Err(XeroError::Auth(format!(
                "{grant}: no refresh token (ask for the offline_access scope)"
            )));
        };
        Ok(TokenSet {
            access_token: r.access_token,
            refresh_token,
            expires_at: chrono::Utc::now().timestamp() + r.expires_in,
            lifetime: r.expires_in,
            scope: r.scope,
            refreshing_until: None,
            revoked: None,
        })
    }

    /// `GET /connections`: the tenant ids a client_credentials token reaches.
    pub async fn connections(&self) -> Result<Vec<String>, XeroError> {
        let token = self.client_credentials(None).await?;
        let list = self.connections_with(&token.access_token).await?;
        Ok(list
            .iter()
            .filter_map(|c| c.get("tenantId").and_then(Value::as_str))
            .map(str::to_ascii_lowercase)
            .collect())
    }

    /// `GET /connections` with `access_token`: Xero's connection objects (`tenantId`,
    /// `tenantName`, `id`, ...).
    pub async fn connections_with(&self, access_token: &str) -> Result<Vec<Value>, XeroError> {
        let base = self
            .api_url
            .trim_end_matches('/')
            .trim_end_matches("/api.xro/2.0")
            .to_owned();
        let resp = self
            .http
            .get(format!("{base}/connections"))
            .bearer_auth(access_token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| XeroError::Transient(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(XeroError::Transient(format!(
                "connections: {}",
                resp.status()
            )));
        }
        resp.json()
            .await
            .map_err(|e| XeroError::Transient(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An identity endpoint that answers every request with `status` and `body`.
    async fn identity(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn endpoint(identity_url: String) -> Endpoint {
        Endpoint {
            http: ledgerline_platform::tls::http_client("test").unwrap(),
            api_url: format!("{identity_url}/api.xro/2.0"),
            identity_url,
            client_id: "id".into(),
            client_secret: SecretString::from("secret"),
            timeout: Duration::from_secs(5),
            scopes: String::new(),
        }
    }

    #[tokio::test]
    async fn a_429_from_the_token_endpoint_is_transient_for_every_grant() {
        let e = endpoint(identity("429 Too Many Requests", "{}").await);
        let cc = e.client_credentials(Some("t")).await.unwrap_err();
        assert!(matches!(cc, XeroError::Transient(_)), "{cc:?}");
        let refresh = e
            .grant(&[("grant_type", "refresh_token"), ("refresh_token", "r")])
            .await
            .unwrap_err();
        assert!(matches!(refresh, XeroError::Transient(_)), "{refresh:?}");
    }

    #[tokio::test]
    async fn a_refused_grant_is_auth_with_xeros_error_code() {
        let e = endpoint(identity("400 Bad Request", r#"{"error":"invalid_client"}"#).await);
        match e.client_credentials(None).await.unwrap_err() {
            XeroError::Auth(why) => assert_eq!(why, "client_credentials: invalid_client"),
            other => panic!("{other:?}"),
        }
    }
}
