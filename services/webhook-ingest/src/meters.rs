//! The hot path's metric handles, registered once: the `metrics` macros build a key (label
//! strings included) and look it up in the registry on every call, which the profile showed
//! on every accepted webhook. Rejections are rare and keep using the macros.

use crate::Outcome;
use metrics::{Counter, Gauge, Histogram};
use std::collections::HashMap;
use std::sync::RwLock;

/// `ingest_webhooks_total` for one store's accepted outcomes.
#[derive(Clone)]
struct Accepted {
    stored: Counter,
    duplicate: Counter,
}

/// Handles for `ingest_in_flight_requests`, `ingest_publish_duration_seconds` and the accepted
/// outcomes of `ingest_webhooks_total`. Make it after the recorder is installed.
pub struct Meters {
    in_flight: Gauge,
    publish: Histogram,
    /// Per configured store (stores come from configuration, so this stays small).
    accepted: RwLock<HashMap<String, Accepted>>,
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters").finish_non_exhaustive()
    }
}

impl Default for Meters {
    fn default() -> Self {
        Self {
            in_flight: metrics::gauge!("ingest_in_flight_requests"),
            publish: metrics::histogram!("ingest_publish_duration_seconds"),
            accepted: RwLock::default(),
        }
    }
}

impl Meters {
    /// Counts an accepted webhook for a known store.
    pub fn accepted(&self, store: &str, outcome: Outcome) {
        let pick = |a: &Accepted| match outcome {
            Outcome::Stored => a.stored.increment(1),
            Outcome::Duplicate => a.duplicate.increment(1),
        };
        if let Some(a) = self
            .accepted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(store)
        {
            return pick(a);
        }
        let counter = |outcome: Outcome| metrics::counter!("ingest_webhooks_total", "store" => store.to_owned(), "outcome" => outcome.label());
        let a = Accepted {
            stored: counter(Outcome::Stored),
            duplicate: counter(Outcome::Duplicate),
        };
        pick(&a);
        self.accepted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(store.to_owned(), a);
    }

    /// Records one RAW publish's duration (acknowledged or not).
    pub fn publish(&self, seconds: f64) {
        self.publish.record(seconds);
    }

    /// Counts a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.increment(1.0);
        InFlight(&self.in_flight)
    }
}

/// One request in `ingest_in_flight_requests`.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
