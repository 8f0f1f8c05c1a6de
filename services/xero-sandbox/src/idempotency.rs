//! `Idempotency-Key`: the first response to a key is stored with a fingerprint of the request and
//! replayed for the window (6 minutes, scaled); the same key on a different request is a 400.

use crate::resp::Resp;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest key Xero accepts.
pub const MAX_KEY_LEN: usize = 128;

#[derive(Debug)]
struct Entry {
    fingerprint: [u8; 32],
    at: Instant,
    /// `None` while the first request is still being processed.
    response: Option<Resp>,
}

/// What to do with a request carrying a key.
#[derive(Debug)]
pub enum Lookup {
    /// First use: process it, then `store` the response.
    Fresh,
    /// Seen before with the same request: send this again.
    Replay(Resp),
    /// Seen before with a different request.
    Mismatch,
    /// Seen before and still being processed.
    InProgress,
}

/// Keys remembered across all tenants (Xero scopes them per app).
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: HashMap<String, Entry>,
    /// When expired entries were last swept; sweeping on every call would be O(n) per call.
    swept: Option<Instant>,
}

/// Hashes what makes two requests "the same": tenant, method, path and query, body.
pub fn fingerprint(tenant: &str, method: &str, uri: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [tenant.as_bytes(), method.as_bytes(), uri.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl IdempotencyStore {
    /// Looks a key up, reserving it when it is new.
    pub fn begin(&mut self, key: &str, fp: [u8; 32], window: Duration) -> Lookup {
        let now = Instant::now();
        let sweep_every = (window / 10).max(Duration::from_millis(1));
        if self
            .swept
            .is_none_or(|t| now.duration_since(t) >= sweep_every)
        {
            self.entries
                .retain(|_, e| now.duration_since(e.at) < window);
            self.swept = Some(now);
        }
        if self
            .entries
            .get(key)
            .is_some_and(|e| now.duration_since(e.at) >= window)
        {
            self.entries.remove(key);
        }
        match self.entries.get(key) {
            None => {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        fingerprint: fp,
                        at: now,
                        response: None,
                    },
                );
                Lookup::Fresh
            }
            Some(e) if e.fingerprint != fp => Lookup::Mismatch,
            Some(Entry {
                response: Some(r), ..
            }) => Lookup::Replay(r.clone()),
            Some(_) => Lookup::InProgress,
        }
    }

    /// Stores the response of a fresh request.
    pub fn finish(&mut self, key: &str, resp: &Resp) {
        if let Some(e) = self.entries.get_mut(key) {
            e.response = Some(resp.clone());
        }
    }

    /// Forgets a reservation whose request never produced a response.
    pub fn abandon(&mut self, key: &str) {
        if self.entries.get(key).is_some_and(|e| e.response.is_none()) {
            self.entries.remove(key);
        }
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.swept = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn replays_same_request_and_refuses_a_different_one() {
        let mut s = IdempotencyStore::default();
        let w = Duration::from_secs(360);
        let a = fingerprint("t", "PUT", "/Invoices", b"{}");
        let b = fingerprint("t", "PUT", "/Invoices", b"{\"x\":1}");
        assert!(matches!(s.begin("k", a, w), Lookup::Fresh));
        assert!(matches!(s.begin("k", a, w), Lookup::InProgress));
        s.finish("k", &Resp::text(StatusCode::OK, "hi"));
        assert!(matches!(s.begin("k", a, w), Lookup::Replay(r) if r.body == b"hi"));
        assert!(matches!(s.begin("k", b, w), Lookup::Mismatch));
        assert!(matches!(s.begin("k", a, Duration::ZERO), Lookup::Fresh));
    }
}
