//! What the reconciler does about a finding, by its kind's policy: nothing (report), ask
//! webhook-ingest to resync the order from the store's API, or ask the writer to check the
//! order against Xero and converge (a repair request). The reconciler itself never writes to
//! Xero. Actions are paced (at most so many a minute) and counted.

use crate::findings::{Draft, Kind, Policy};
use crate::view::OrderView;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{RepairRequest, StoreOrdersReply, StoreOrdersRequest};
use ledgerline_platform::publish::Publisher;
use prost::Message as _;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Acts on findings.
#[derive(Debug, Clone)]
pub struct Actions {
    publisher: Publisher,
    client: async_nats::Client,
    policies: Arc<BTreeMap<Kind, Policy>>,
    /// The tenant when the order's own is not known yet (the single connected one).
    default_tenant: Arc<Mutex<Option<String>>>,
    per_minute: u32,
    sent: Arc<Mutex<VecDeque<Instant>>>,
}

impl Actions {
    /// Actions through `publisher` and `client`, at most `per_minute` a minute.
    pub fn new(
        publisher: Publisher,
        client: async_nats::Client,
        policies: BTreeMap<Kind, Policy>,
        per_minute: u32,
    ) -> Self {
        Self {
            publisher,
            client,
            policies: Arc::new(policies),
            default_tenant: Default::default(),
            per_minute,
            sent: Default::default(),
        }
    }

    /// The tenant for orders none of whose writes has been seen yet.
    pub fn set_default_tenant(&self, tenant: &str) {
        *self
            .default_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tenant.to_owned());
    }

    /// The policy of `kind`.
    pub fn policy(&self, kind: Kind) -> Policy {
        self.policies
            .get(&kind)
            .copied()
            .unwrap_or(kind.default_policy())
    }

    /// Room for one more action this minute (sliding window).
    fn room(&self) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            sent.pop_front();
        }
        if sent.len() as u32 >= self.per_minute {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// Acts on a finding that just opened; says what was done.
    pub async fn act(&self, view: &OrderView, d: &Draft) -> String {
        let policy = self.policy(d.kind);
        if policy == Policy::Report {
            return "reported".into();
        }
        if !self.room() {
            metrics::counter!("recon_actions_total", "kind" => d.kind.as_str(), "action" => "deferred").increment(1);
            return format!(
                "{} deferred: more than {} actions this minute",
                policy.as_str(),
                self.per_minute
            );
        }
        let done = match policy {
            Policy::Repair => self.repair(view, d).await,
            Policy::Resync => {
                let since = d
                    .store_side
                    .get("updated")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| {
                        (t.with_timezone(&chrono::Utc) - chrono::Duration::minutes(1))
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    })
                    .unwrap_or_else(|| since_for(view));
                self.resync(&view.store, since).await
            }
            Policy::Report => unreachable!("handled above"),
        };
        metrics::counter!("recon_actions_total", "kind" => d.kind.as_str(), "action" => policy.as_str()).increment(1);
        done
    }

    async fn repair(&self, view: &OrderView, d: &Draft) -> String {
        let tenant = if view.xero.tenant.is_empty() {
            self.default_tenant
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            Some(view.xero.tenant.clone())
        };
        let Some(tenant) = tenant else {
            return "repair not sent: no Xero tenant known for the order yet".into();
        };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let finding_id = format!("{}:{}", d.kind.as_str(), view.key());
        let req = RepairRequest {
            request_id: format!("{finding_id}@{at}"),
            tenant_id: tenant.clone(),
            store: view.store.clone(),
            order_id: view.order_id.clone(),
            order_number: view.order_number.clone(),
            finding_id,
            finding_kind: d.kind.as_str().to_owned(),
            requested_at: at,
            overwrite_xero_changes: d.kind == Kind::ChangedInXero,
        };
        let subject = subjects::repair(&tenant, &view.store, &view.order_id);
        if self
            .publisher
            .publish_proto_retrying(subject, &req.request_id, &req, "repair request")
            .await
        {
            "repair requested".into()
        } else {
            "repair request not stored (NATS); the next look tries again".into()
        }
    }

    /// Asks webhook-ingest to store `store`'s orders changed since `since` in RAW.
    pub async fn resync(&self, store: &str, since: String) -> String {
        match self.store_orders(store, &since, true).await {
            Ok(r) if r.error.is_empty() => format!(
                "resync from the store: {} orders read, {} stored, {} already stored",
                r.orders.len(),
                r.stored,
                r.duplicates
            ),
            Ok(r) => format!("resync failed: {}", r.error),
            Err(e) => format!("resync failed: {e}"),
        }
    }

    /// The store's orders changed since `since` (through webhook-ingest, which holds the
    /// store's credentials); stored in RAW too with `resync`.
    pub async fn store_orders(
        &self,
        store: &str,
        since: &str,
        resync: bool,
    ) -> Result<StoreOrdersReply, String> {
        let req = StoreOrdersRequest {
            since: since.to_owned(),
            resync,
        };
        let reply = tokio::time::timeout(
            Duration::from_secs(60),
            self.client
                .request(subjects::store_orders(store), req.encode_to_vec().into()),
        )
        .await
        .map_err(|_| "webhook-ingest did not answer in 60 s".to_owned())?
        .map_err(|e| format!("no webhook-ingest answers for store {store}: {e}"))?;
        StoreOrdersReply::decode(reply.payload.as_ref()).map_err(|e| e.to_string())
    }
}

/// From when to resync an order: a minute before the store first told us of it (or now, for
/// an order we never saw: the store check gives its own `since`).
fn since_for(view: &OrderView) -> String {
    let t = view
        .store_side
        .as_ref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s.first_seen).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
        - chrono::Duration::minutes(1);
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
