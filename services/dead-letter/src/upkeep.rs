//! Background upkeep: retention (resolved and discarded entries removed after a while, open
//! ones never) and the gauges (open entries by stage and reason, the oldest one's age).

use crate::store::Store;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Removes entries closed longer ago than `retention`, every `every`.
pub async fn retention(
    store: Store,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let expired = store.expired(&cutoff);
        let mut removed = 0u64;
        for id in expired {
            match store.remove(&id).await {
                Ok(()) => removed += 1,
                Err(error) => tracing::warn!(%error, id, "Expired entry not removed yet."),
            }
        }
        if removed > 0 {
            metrics::counter!("dead_letter_removed_total").increment(removed);
            tracing::info!(removed, "Retention removed closed entries.");
        }
    }
}

/// Refreshes the gauges every `every`.
pub async fn gauges(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    loop {
        let (counts, oldest) = store.open_counts();
        // A series that dropped to zero reads 0, not its last value.
        for (stage, reason) in seen.iter() {
            if !counts.contains_key(&(stage.clone(), reason.clone())) {
                metrics::gauge!("dead_letter_open_entries", "stage" => stage.clone(), "reason" => reason.clone()).set(0.0);
            }
        }
        for ((stage, reason), n) in &counts {
            metrics::gauge!("dead_letter_open_entries", "stage" => stage.clone(), "reason" => reason.clone()).set(*n as f64);
            seen.insert((stage.clone(), reason.clone()));
        }
        let age = oldest
            .and_then(|o| chrono::DateTime::parse_from_rfc3339(&o).ok())
            .map(|t| {
                chrono::Utc::now()
                    .signed_duration_since(t)
                    .num_seconds()
                    .max(0)
            })
            .unwrap_or(0);
        metrics::gauge!("dead_letter_oldest_open_age_seconds").set(age as f64);
        metrics::gauge!("dead_letter_entries").set(store.len() as f64);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
