//! The organisation's settings the report needs (timezone, base currency), read from Xero
//! when the reconciler starts and once a day, and kept in `recon_state` (`org.<tenant>`), so
//! a report never calls Xero.

use async_nats::jetstream::kv;
use futures::StreamExt;
use ledgerline_contract::subjects;
use ledgerline_xero_client::budget::{Lane, in_lane};
use ledgerline_xero_client::{Client, model};
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// What the report takes from the Organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Tenant id.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// IANA timezone.
    pub timezone: String,
    /// Base currency.
    pub base_currency: String,
    /// When read (RFC 3339).
    pub read_at: String,
}

impl Org {
    /// The timezone (UTC when unreadable).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

fn key(tenant: &str) -> String {
    format!("org.{}", subjects::token(tenant))
}

/// Reads the Organisation (one call in the reconcile lane) and keeps it.
pub async fn refresh(client: &Client, tenant: &str, state: &kv::Store) -> anyhow::Result<Org> {
    let answer = in_lane(Lane::Reconcile, async {
        client.call(Method::GET, "/Organisation", &[], None).await
    })
    .await?;
    let o: model::Organisation = answer.organisations.into_iter().next().unwrap_or_default();
    let org = Org {
        tenant: tenant.to_owned(),
        name: o.name.clone(),
        timezone: o.tz().name().to_owned(),
        base_currency: o.base_currency.clone(),
        read_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    state
        .put(key(tenant), serde_json::to_vec(&org)?.into())
        .await?;
    Ok(org)
}

/// The kept settings of `tenant`, or with none named, of the first tenant kept.
pub async fn load(state: &kv::Store, tenant: Option<&str>) -> anyhow::Result<Option<Org>> {
    let key = match tenant {
        Some(t) => key(t),
        None => {
            let mut keys: Vec<String> = state
                .keys()
                .await?
                .filter_map(|k| async move { k.ok().filter(|k| k.starts_with("org.")) })
                .collect()
                .await;
            keys.sort();
            match keys.into_iter().next() {
                Some(k) => k,
                None => return Ok(None),
            }
        }
    };
    Ok(match state.get(&key).await? {
        Some(b) => serde_json::from_slice(&b).ok(),
        None => None,
    })
}
