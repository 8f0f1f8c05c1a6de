//! Orders the pipeline never saw: now and then the store's API is asked (through webhook-ingest,
//! which holds the store's credentials) for the orders changed since the last look; an order
//! the projection lacks, or lacks at the store's version, a while after it changed, is an
//! `unseen_order` finding (policy: resync by default).

use crate::actions::Actions;
use crate::findings::{Draft, Kind};
use crate::projection::Projection;
use async_nats::jetstream::kv;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Looks at `store` once: returns how many unseen orders were found.
pub async fn check(
    projection: &Projection,
    actions: &Actions,
    state: &kv::Store,
    store: &str,
    grace: Duration,
) -> Result<usize, String> {
    let key = format!("store.{store}");
    let now = chrono::Utc::now();
    let since = match state.get(&key).await {
        Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
        // First look: the last day.
        _ => (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let reply = actions.store_orders(store, &since, false).await?;
    if !reply.error.is_empty() {
        return Err(reply.error);
    }
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or_default();
    let mut found = 0;
    let mut latest_old_enough = since.clone();
    for o in &reply.orders {
        let changed = chrono::DateTime::parse_from_rfc3339(&o.updated_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(now);
        if changed > cutoff {
            // Still on its way through the pipeline, perhaps: the next look decides.
            continue;
        }
        if o.updated_at > latest_old_enough {
            latest_old_enough = o.updated_at.clone();
        }
        let (view, _) = projection
            .load(store, &o.id)
            .await
            .map_err(|e| e.to_string())?;
        let seen = view.store_side.as_ref().map_or(0, |s| s.version);
        if seen >= o.version {
            continue;
        }
        found += 1;
        let draft = Draft {
            kind: Kind::UnseenOrder,
            summary: if seen == 0 {
                format!(
                    "the store has order {} that the pipeline never saw",
                    o.number
                )
            } else {
                format!(
                    "the store has order {} at version {}, the pipeline only version {seen}",
                    o.number, o.version
                )
            },
            store_side: BTreeMap::from([
                ("version".to_owned(), o.version.to_string()),
                ("updated".to_owned(), o.updated_at.clone()),
            ]),
            xero_side: BTreeMap::from([("pipeline version".to_owned(), seen.to_string())]),
            suggested_action:
                "resync the order from the store (webhook-ingest), then it flows through".into(),
        };
        projection
            .raise(store, &o.id, &o.number, &draft, o.version)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Next time from the newest order this look could judge (overlapping by a minute).
    let next = chrono::DateTime::parse_from_rfc3339(&latest_old_enough)
        .map(|t| {
            (t - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or(since);
    let _ = state.put(&key, Bytes::from(next)).await;
    Ok(found)
}
