//! `XERO_GRANT_TYPE=authorization_code`: each tenant's token set (access token, refresh token,
//! expiry) lives in the XERO_TOKENS bucket under `ac.<tenant>`, and its connection state.
//!
//! Xero rotates the refresh token on every refresh, and two clients refreshing one grant break
//! it, so exactly one replica refreshes per expiry: it first takes a lease on the entry by
//! compare-and-set on the KV revision; the others wait for its new entry and use that. A refused
//! grant (`invalid_grant`) or a refused tenant (401/403 with a fresh token) marks the entry
//! revoked: the tenant is paused (its events wait in JetStream), one alert goes out, and work
//! resumes when `xero-writer connect` stores a new set (every replica watches the key).

use crate::endpoint::Endpoint;
use crate::error::XeroError;
use async_nats::jetstream::kv;
use futures::StreamExt;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{XeroConnectionEvent, XeroConnectionState};
use ledgerline_platform::publish::Publisher;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The XERO_TOKENS key of a tenant's authorization_code token set.
pub fn key(tenant: &str) -> String {
    format!("ac.{tenant}")
}

/// One grant's tokens as stored in XERO_TOKENS (JSON).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenSet {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Single-use (rotated) refresh token.
    pub refresh_token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Lifetime in seconds when issued (to refresh at 80 % of it).
    pub lifetime: i64,
    /// Granted scopes.
    #[serde(default)]
    pub scope: String,
    /// Unix ms until which one replica is refreshing; the others wait for its entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshing_until: Option<i64>,
    /// Why Xero refused this grant or tenant; a revoked set is dead until `connect` replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// True while the access token is usable without a refresh.
    pub fn fresh(&self) -> bool {
        let margin = (self.lifetime / 5).clamp(1, 60);
        chrono::Utc::now().timestamp() + margin < self.expires_at
    }

    fn bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}

/// When `set` stops being fresh (see [`TokenSet::fresh`]).
fn refresh_due(set: &TokenSet) -> tokio::time::Instant {
    let margin = (set.lifetime / 5).clamp(1, 60);
    let stale_ms = (set.expires_at - margin) * 1000 + 50;
    let wait = u64::try_from(stale_ms - now_ms()).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(wait)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One tenant's authorization_code tokens and connection state, shared by its workers.
#[derive(Debug)]
pub struct Connection {
    tenant: String,
    kv: kv::Store,
    publisher: Option<Publisher>,
    cached: Mutex<Option<TokenSet>>,
    /// Why the tenant is paused; `None` while it may call Xero.
    lost: Mutex<Option<String>>,
}

impl Connection {
    /// The connection of `tenant`; alerts go through `publisher` when there is one.
    pub fn new(tenant: &str, kv: kv::Store, publisher: Option<Publisher>) -> Self {
        metrics::gauge!("xero_client_tenant_connected", "tenant" => tenant.to_owned()).set(1.0);
        Self {
            tenant: tenant.to_owned(),
            kv,
            publisher,
            cached: Mutex::new(None),
            lost: Mutex::new(None),
        }
    }

    /// False while the tenant is paused for want of a usable grant.
    pub fn is_connected(&self) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn cache(&self, set: &TokenSet) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
    }

    /// A usable access token other than `rejected` (one Xero just answered 401 to), refreshing
    /// the grant if needed; at most one replica refreshes, the others take its result.
    pub async fn access_token(
        &self,
        endpoint: &Endpoint,
        rejected: Option<&str>,
    ) -> Result<String, XeroError> {
        if let Some(t) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            && t.fresh()
            && Some(t.access_token.as_str()) != rejected
        {
            return Ok(t.access_token);
        }
        let key = key(&self.tenant);
        // Waiting on another replica's lease is bounded by the lease itself.
        let lease = endpoint.timeout + Duration::from_secs(5);
        let give_up = tokio::time::Instant::now() + lease * 2;
        loop {
            let entry = self
                .kv
                .entry(&key)
                .await
                .map_err(|e| XeroError::Transient(format!("token store: {e}")))?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                let why = "no token set stored; run `xero-writer connect`".to_owned();
                self.lose(&why, None).await;
                return Err(XeroError::Auth(why));
            };
            let set: TokenSet = match serde_json::from_slice(&entry.value) {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("unreadable token set ({e}); run `xero-writer connect`");
                    self.lose(&why, None).await;
                    return Err(XeroError::Auth(why));
                }
            };
            if let Some(why) = &set.revoked {
                self.lose(why, None).await;
                return Err(XeroError::Auth(why.clone()));
            }
            if set.fresh() && Some(set.access_token.as_str()) != rejected {
                self.cache(&set);
                return Ok(set.access_token);
            }
            if set.refreshing_until.is_some_and(|until| until > now_ms()) {
                if tokio::time::Instant::now() > give_up {
                    return Err(XeroError::Transient(
                        "another replica's token refresh takes too long".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let mut leased = set.clone();
            leased.refreshing_until = Some(now_ms() + lease.as_millis() as i64);
            let Ok(lease_rev) = self.kv.update(&key, leased.bytes(), entry.revision).await else {
                // Another replica took the lease (or wrote a new set): read what it wrote.
                continue;
            };
            match endpoint
                .grant(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &set.refresh_token),
                ])
                .await
            {
                Ok(new) => {
                    metrics::counter!("xero_client_token_refreshes_total", "tenant" => self.tenant.clone()).increment(1);
                    if self.kv.update(&key, new.bytes(), lease_rev).await.is_ok() {
                        tracing::info!(tenant = %self.tenant, expires_in = new.lifetime, "Xero token refreshed.");
                        self.cache(&new);
                        return Ok(new.access_token);
                    }
                    // The entry changed under our lease (a new consent, or the lease ran out):
                    // what is stored wins; the old refresh token keeps its grace period.
                    tracing::warn!(tenant = %self.tenant, "Token set replaced during a refresh; using the stored one.");
                }
                Err(XeroError::Auth(why)) => {
                    let mut dead = set.clone();
                    dead.revoked = Some(why.clone());
                    match self.kv.update(&key, dead.bytes(), lease_rev).await {
                        Ok(rev) => {
                            self.lose(&why, Some(rev)).await;
                            return Err(XeroError::Auth(why));
                        }
                        Err(_) => continue,
                    }
                }
                Err(e) => {
                    // Release the lease so the next attempt (any replica's) need not wait.
                    let _ = self.kv.update(&key, set.bytes(), lease_rev).await;
                    return Err(e);
                }
            }
        }
    }

    /// Xero refused the API call with `token` although it was fresh (401 after a refresh, or
    /// 403): consent revoked or the organisation disconnected. Marks the stored set revoked
    /// (unless a newer set replaced it meanwhile) and pauses the tenant.
    pub async fn refused(&self, token: &str, why: &str) {
        // The next call reads the stored set, so a refused token is never tried twice.
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let key = key(&self.tenant);
        for _ in 0..10 {
            let Ok(Some(entry)) = self.kv.entry(&key).await else {
                self.lose(why, None).await;
                return;
            };
            let Ok(set) = serde_json::from_slice::<TokenSet>(&entry.value) else {
                self.lose(why, None).await;
                return;
            };
            if set.access_token != token && set.revoked.is_none() {
                // A new consent (or refresh) landed since: try that one first.
                return;
            }
            if let Some(already) = &set.revoked {
                self.lose(already, None).await;
                return;
            }
            let mut dead = set;
            dead.revoked = Some(why.to_owned());
            dead.refreshing_until = None;
            if let Ok(rev) = self.kv.update(&key, dead.bytes(), entry.revision).await {
                self.lose(why, Some(rev)).await;
                return;
            }
        }
        self.lose(why, None).await;
    }

    /// Pauses the tenant. `marked` is the revision of the entry this replica marked revoked:
    /// only that replica publishes the alert, with a message id every retry shares.
    async fn lose(&self, why: &str, marked: Option<u64>) {
        let first = {
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            let first = lost.is_none();
            *lost = Some(why.to_owned());
            first
        };
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
        metrics::gauge!("xero_client_tenant_connected", "tenant" => self.tenant.clone()).set(0.0);
        if first {
            tracing::error!(tenant = %self.tenant, reason = %why, "No usable Xero authorisation for this tenant; it is paused (its events wait) until `xero-writer connect` stores a new token set.");
        }
        if let Some(rev) = marked {
            self.publish(XeroConnectionState::Disconnected, why, rev)
                .await;
        }
    }

    async fn publish(&self, state: XeroConnectionState, why: &str, revision: u64) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        let word = match state {
            XeroConnectionState::Connected => "restored",
            _ => "lost",
        };
        let id = format!("xero-connection-{word}-{}-{revision}", self.tenant);
        let event = XeroConnectionEvent {
            event_id: id.clone(),
            tenant_id: self.tenant.clone(),
            state: state as i32,
            reason: why.to_owned(),
            occurred_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let subject = subjects::xero_connection(&self.tenant, state);
        publisher
            .publish_proto_retrying(subject, &id, &event, "connection event")
            .await;
    }

    /// Follows the tenant's key: a revoked set (another replica's finding) pauses at once, a
    /// usable one after a pause resumes the tenant. Also refreshes shortly before expiry while
    /// the tenant is idle, so a revoked grant is found (and alerted) before work piles up.
    pub async fn watch(
        self: std::sync::Arc<Self>,
        endpoint: Endpoint,
        shutdown: CancellationToken,
    ) {
        let key = key(&self.tenant);
        let mut due: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            let mut watch = match self.kv.watch_with_history(&key).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant, error = %e, "Cannot watch the token store yet.");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    continue;
                }
            };
            loop {
                let timer = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let entry = tokio::select! {
                    e = watch.next() => e,
                    _ = timer => {
                        // The stored set's expiry moves `due` on; this only stops a busy loop.
                        due = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        if self.is_connected()
                            && let Err(XeroError::Transient(e)) =
                                self.access_token(&endpoint, None).await
                        {
                            tracing::warn!(tenant = %self.tenant, error = %e, "Early token refresh failed; retrying.");
                            due = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                        }
                        continue;
                    }
                    _ = shutdown.cancelled() => return,
                };
                let Some(Ok(entry)) = entry else {
                    break;
                };
                if entry.operation != kv::Operation::Put {
                    self.lose("token set deleted; run `xero-writer connect`", None)
                        .await;
                    continue;
                }
                let Ok(set) = serde_json::from_slice::<TokenSet>(&entry.value) else {
                    continue;
                };
                if let Some(why) = &set.revoked {
                    due = None;
                    self.lose(why, None).await;
                    continue;
                }
                due = Some(refresh_due(&set));
                if !self.is_connected() {
                    self.resume(&set, entry.revision).await;
                }
            }
        }
    }

    async fn resume(&self, set: &TokenSet, revision: u64) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if set.fresh() {
            self.cache(set);
        }
        metrics::gauge!("xero_client_tenant_connected", "tenant" => self.tenant.clone()).set(1.0);
        tracing::info!(tenant = %self.tenant, "A usable Xero token set is stored; the tenant resumes.");
        self.publish(XeroConnectionState::Connected, "token set stored", revision)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::form;

    #[test]
    fn forms_are_encoded_and_sets_hide_tokens() {
        assert_eq!(
            form(&[("grant_type", "refresh_token"), ("refresh_token", "a b&c")]),
            "grant_type=refresh_token&refresh_token=a+b%26c"
        );
        let set = TokenSet {
            access_token: "secret-access".into(),
            refresh_token: "secret-refresh".into(),
            expires_at: 0,
            lifetime: 1800,
            scope: String::new(),
            refreshing_until: None,
            revoked: None,
        };
        let shown = format!("{set:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!set.fresh());
        let json = String::from_utf8(set.bytes().to_vec()).unwrap();
        assert!(!json.contains("revoked") && !json.contains("refreshing_until"));
    }
}
