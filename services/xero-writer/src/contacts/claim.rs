//! Single-flight creation across replicas: the worker that claims a new contact (`<cache
//! key>.creating` in CONTACTS) searches and creates it; the others wait for its ContactID.
//!
//! A claim holds the time it was last renewed. The holder renews it while it works, because a
//! round may wait a whole minute for Xero's budget; only a claim nobody renews (its holder
//! stopped mid-way) goes stale and may be taken over.

use super::{Origin, Resolved, cached_id};
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::time::Duration;

/// A claim not renewed for this long was left by a worker that stopped, and may be taken over.
const STALE: Duration = Duration::from_secs(30);
/// How often the holder renews its claims.
const RENEW: Duration = Duration::from_secs(8);
/// How long a worker waits for another's creation before trying again later.
const WAIT: Duration = Duration::from_secs(30);
/// How often a waiting worker looks at the cache.
const POLL: Duration = Duration::from_millis(50);

/// Who creates a contact.
pub(super) enum Claim {
    /// This worker: the claim (this key) is renewed while it works and released after.
    Ours(String),
    /// Another worker.
    Theirs,
}

fn claim_key(key: &str) -> String {
    format!("{key}.creating")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn is_fresh(entry: &kv::Entry, now: u64) -> bool {
    let at: u64 = String::from_utf8_lossy(&entry.value).parse().unwrap_or(0);
    entry.operation == kv::Operation::Put && now.saturating_sub(at) < STALE.as_millis() as u64
}

/// Claims the creation of the contact cached under `key`: create-if-absent, or compare-and-set
/// over a released or stale claim. Whatever `create` answers, the entry decides: a lost race
/// over a released claim comes back as a publish error, not "already exists". Store trouble
/// lets this worker go ahead, as before claims (Xero's "already exists" and the lookup behind
/// it still keep the contact single).
pub(super) async fn claim(cache: &kv::Store, key: &str) -> Claim {
    let claim_key = claim_key(key);
    let now = now_ms();
    if cache
        .create(&claim_key, now.to_string().into())
        .await
        .is_ok()
    {
        return Claim::Ours(claim_key);
    }
    let entry = match cache.entry(&claim_key).await {
        Ok(Some(entry)) => entry,
        Ok(None) | Err(_) => return Claim::Ours(claim_key),
    };
    if is_fresh(&entry, now) {
        return Claim::Theirs;
    }
    match cache
        .update(&claim_key, now.to_string().into(), entry.revision)
        .await
    {
        Ok(_) => Claim::Ours(claim_key),
        Err(_) => Claim::Theirs,
    }
}

/// Claims side by side, as the cache is read.
pub(super) async fn claim_all<T>(cache: &kv::Store, items: Vec<(T, String)>) -> Vec<(T, Claim)> {
    let claims: Vec<_> = items
        .into_iter()
        .map(|(item, key)| async move {
            let c = claim(cache, &key).await;
            (item, c)
        })
        .collect();
    futures::stream::iter(claims).buffered(64).collect().await
}

/// Renews `claims` until dropped (it never returns): run beside the work they cover.
pub(super) async fn renew(cache: &kv::Store, claims: &[String]) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(RENEW).await;
        let now = now_ms().to_string();
        let puts: Vec<_> = claims
            .iter()
            .map(|k| {
                let value = now.clone().into();
                async move { cache.put(k, value).await }
            })
            .collect();
        futures::stream::iter(puts)
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
    }
}

/// Releases `claims` (after the cache holds what they created).
pub(super) async fn release(cache: &kv::Store, claims: &[String]) {
    let deletes: Vec<_> = claims
        .iter()
        .map(|k| async move { cache.delete(k).await })
        .collect();
    futures::stream::iter(deletes)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
}

/// Waits for another worker's creation of the contact cached under `key`: its ContactID, or
/// `Transient` (tried again later) if the claim is released or goes stale without one, or the
/// wait runs out.
pub(super) async fn wait_for(cache: &kv::Store, key: &str) -> Resolved {
    let claim_key = claim_key(key);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(v)) = cache.get(key).await
            && !v.is_empty()
        {
            metrics::counter!(crate::metrics_names::CONTACT_WAITS, "outcome" => "found")
                .increment(1);
            return Resolved::Id(cached_id(&v), Origin::Cached);
        }
        let held = matches!(cache.entry(&claim_key).await, Ok(Some(e)) if is_fresh(&e, now_ms()));
        if !held || tokio::time::Instant::now() >= deadline {
            // Look once more: the holder writes the cache before it releases the claim.
            if let Ok(Some(v)) = cache.get(key).await
                && !v.is_empty()
            {
                return Resolved::Id(cached_id(&v), Origin::Cached);
            }
            metrics::counter!(crate::metrics_names::CONTACT_WAITS, "outcome" => "retry")
                .increment(1);
            return Resolved::Transient(
                "another worker was creating this contact and did not finish; tried again later"
                    .into(),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
