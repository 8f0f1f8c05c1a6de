//! client_credentials tokens (Custom Connections, and the sandbox): one per tenant, shared by
//! replicas through the XERO_TOKENS bucket under `cc.<tenant>`.

use crate::endpoint::Endpoint;
use crate::error::XeroError;
use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredToken {
    pub(crate) access_token: String,
    /// Unix seconds.
    pub(crate) expires_at: i64,
    /// Lifetime in seconds when issued (to refresh at 80 % of it).
    pub(crate) lifetime: i64,
}

impl StoredToken {
    fn fresh(&self) -> bool {
        let margin = (self.lifetime / 5).clamp(1, 60);
        chrono::Utc::now().timestamp() + margin < self.expires_at
    }
}

/// One tenant's client_credentials token.
#[derive(Debug)]
pub struct ClientCredentials {
    tenant: String,
    tokens: Option<kv::Store>,
    token: Mutex<Option<StoredToken>>,
}

impl ClientCredentials {
    /// Tokens for `tenant`, shared through `tokens` when given.
    pub fn new(tenant: &str, tokens: Option<kv::Store>) -> Self {
        Self {
            tenant: tenant.to_owned(),
            tokens,
            token: Mutex::new(None),
        }
    }

    /// A usable access token; `rejected` is the one Xero just answered 401 to.
    pub async fn access_token(
        &self,
        endpoint: &Endpoint,
        rejected: Option<&str>,
    ) -> Result<String, XeroError> {
        let force = rejected.is_some();
        if !force
            && let Some(t) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
            && t.fresh()
        {
            return Ok(t.access_token);
        }
        // Per scope set too: a service that asks for fewer scopes (the reconciler reads) must
        // not hand its token to one that writes.
        let key = format!("cc.{}.{}", self.tenant, scope_key(&endpoint.scopes));
        // Another replica may have refreshed already.
        let mut revision = None;
        if let Some(kv) = &self.tokens
            && let Ok(Some(entry)) = kv.entry(&key).await
        {
            revision = Some(entry.revision);
            if entry.operation == kv::Operation::Put
                && let Ok(t) = serde_json::from_slice::<StoredToken>(&entry.value)
                && t.fresh()
                && !force
            {
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
                return Ok(t.access_token);
            }
        }
        let t = endpoint.client_credentials(Some(&self.tenant)).await?;
        if let Some(kv) = &self.tokens {
            let bytes = serde_json::to_vec(&t).unwrap_or_default();
            let written = match revision {
                Some(r) => kv.update(&key, bytes.into(), r).await.is_ok(),
                None => kv.create(&key, bytes.into()).await.is_ok(),
            };
            if !written {
                // Lost the race: the winner's token is as good as ours; use it if readable.
                if let Ok(Some(v)) = kv.get(&key).await
                    && let Ok(w) = serde_json::from_slice::<StoredToken>(&v)
                    && w.fresh()
                {
                    *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
                    return Ok(w.access_token);
                }
            }
        }
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
        Ok(t.access_token)
    }
}

/// A short, stable name for a scope set (order and spacing do not matter).
fn scope_key(scopes: &str) -> String {
    use sha2::Digest;
    let mut words: Vec<&str> = scopes.split_whitespace().collect();
    words.sort_unstable();
    crate::hex(&sha2::Sha256::digest(words.join(" ").as_bytes()))[..12].to_owned()
}
