//! xero-writer: the heart of Ledgerline. Reads canonical order and refund events from ORDERS
//! through one durable consumer per Xero tenant and makes Xero match them: contacts, AUTHORISED
//! invoices, payments, credit notes and voids, exactly once, in batches, within Xero's limits.
//!
//! Shape: [`Config`] (validated at start) → [`Writer::build`] (connect) → [`Writer::run`]
//! (topology, one worker per tenant, HTTP ops until the shutdown token fires).
//!
//! - `worker`: the per-tenant convergence loop (batching, plan, steps, ledger, facts, review
//!   queue).
//! - Xero itself (tokens, calls, budget, breaker) is `ledgerline_xero_client`.
//! - [`connect`]: the `connect` subcommand (first consent); [`org`]: the org's settings and
//!   suggestions.
//! - [`compose`]: Xero documents from orders; [`contacts`]: contact matching; `ledger`: what was written.

pub mod compose;
pub mod config;
pub mod connect;
pub mod contacts;
mod customers;
mod ledger;
pub mod org;
mod repair;
mod terms;
mod worker;

pub use config::{Cli, Command, Config, GrantType, TenantConfig};

use ledgerline_contract::{buckets, consumers};
use ledgerline_platform::http::Health;
use ledgerline_platform::publish::Publisher;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Metric names, in one place.
pub mod metrics_names {
    /// Events pulled.
    pub const EVENTS: &str = "xero_writer_events_total";
    /// Ack/nak/term per event.
    pub const OUTCOMES: &str = "xero_writer_event_outcomes_total";
    /// Snapshots already written (no call spent).
    pub const SKIPPED: &str = "xero_writer_snapshots_skipped_total";
    /// Documents written, by kind and verb.
    pub const WRITES: &str = "xero_writer_writes_total";
    /// Review-queue entries by reason.
    pub const REVIEWS: &str = "xero_writer_reviews_total";
    /// Dead letters published.
    pub const DEAD_LETTERS: &str = "xero_writer_dead_letters_total";
    /// Orders before the go-live date, left alone.
    pub const BEFORE_START: &str = "xero_writer_orders_before_start_total";
    /// A payment, refund or allocation that could not be applied, by `kind` and `outcome`
    /// (review or dead_letter): never skipped without one of these.
    pub const UNAPPLIED: &str = "xero_writer_unapplied_total";
    /// Refunds held until the order version they were made against is written.
    pub const REFUNDS_HELD: &str = "xero_writer_refunds_held_total";
    /// Credit allocations undone so that a payment could be recorded in full.
    pub const ALLOCATIONS_UNDONE: &str = "xero_writer_allocations_undone_total";
    /// Tracking values left off because the org lacks them.
    pub const TRACKING_DROPPED: &str = "xero_writer_tracking_dropped_total";
    /// New contacts another worker was creating, waited for (`outcome`: found, retry).
    pub const CONTACT_WAITS: &str = "xero_writer_contact_waits_total";
    /// Contacts the cache did not know, per round of the tenant's contact desk (both paths).
    pub const CONTACT_ROUND_SIZE: &str = "xero_writer_contact_round_size";
}

/// A built writer, ready to run.
#[derive(Debug)]
pub struct Writer {
    config: Arc<Config>,
    client: async_nats::Client,
    health: Health,
}

impl Writer {
    /// Connects to NATS (checking its version).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let client = ledgerline_platform::nats::connect(&config.nats, "xero-writer").await?;
        let health = Health::new();
        health.set_nats(client.clone());
        tracing::info!(api = %config.xero.api_url, tenants = ?config.tenants, dry_run = config.dry_run, tier = %config.xero.tier, day_limit = config.xero.limits.day, egress_allowance = ?config.xero.egress_allowance, egress_cap = ?config.xero.egress_cap, scopes = %config.xero.scopes, "xero-writer configured.");
        Ok(Self {
            config: Arc::new(config),
            client,
            health,
        })
    }

    /// Runs until `shutdown`: topology, tenant workers, HTTP ops.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let cfg = self.config.clone();
        let limits = cfg.nats.limits();
        let specs: Vec<_> = cfg
            .tenants
            .iter()
            .flat_map(|t| {
                [
                    consumers::writer_orders(&t.tenant, &t.stores),
                    consumers::writer_customers(&t.tenant, &t.stores),
                    consumers::writer_repairs(&t.tenant),
                ]
            })
            .collect();
        let bucket_list = vec![
            buckets::LEDGER,
            buckets::XERO_TOKENS,
            buckets::CONTACTS,
            buckets::RATE_BUDGET,
            buckets::MAPPING_OVERLAY,
        ];
        let topology = tokio::spawn(ledgerline_platform::nats::keep_topology(
            self.client.clone(),
            limits,
            specs,
            bucket_list,
            self.health.clone(),
            shutdown.clone(),
        ));
        let (source, mapping) = ledgerline_mapping::MappingSource::load(cfg.mapping.clone())?;
        let js = ledgerline_platform::nats::jetstream(&self.client);
        let overlay = tokio::spawn(source.clone().follow_overlay(js.clone(), shutdown.clone()));
        let follow = tokio::spawn(source.follow_file(Duration::from_secs(2), shutdown.clone()));
        let paused: Paused = Default::default();
        let workers = tokio::spawn(run_workers(
            cfg.clone(),
            self.client.clone(),
            self.health.clone(),
            mapping,
            paused.clone(),
            shutdown.clone(),
        ));
        tracing::info!(addr = %listener.local_addr()?, "xero-writer listening.");
        ledgerline_platform::http::serve(
            listener,
            operator_routes(cfg.clone(), paused),
            self.health.clone(),
            shutdown.clone(),
        )
        .await?;
        shutdown.cancel();
        let _ = tokio::time::timeout(cfg.shutdown_timeout, workers).await;
        ledgerline_platform::shutdown::finish(
            "xero-writer",
            &self.client,
            [topology, overlay, follow],
            ledgerline_platform::shutdown::FINISH_GRACE,
        )
        .await;
        tracing::info!("xero-writer stopped.");
        Ok(())
    }
}

/// Tenants an operator paused.
type Paused = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

#[derive(Clone)]
struct OpsState {
    config: Arc<Config>,
    paused: Paused,
}

/// `GET /tenants/paused`, `POST /tenants/{tenant}/pause` and `/resume` (bearer
/// `WRITER_OPERATOR_TOKEN`): a paused tenant's consumer is not pulled; its events wait.
fn operator_routes(config: Arc<Config>, paused: Paused) -> axum::Router {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use secrecy::ExposeSecret;
    fn allowed(s: &OpsState, h: &HeaderMap) -> bool {
        let Some(want) = &s.config.operator_token else {
            return false;
        };
        h.get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == want.expose_secret())
    }
    async fn set(s: OpsState, h: HeaderMap, tenant: String, pause: bool) -> (StatusCode, String) {
        if !allowed(&s, &h) {
            return (StatusCode::FORBIDDEN, "operator token required".into());
        }
        let mut p = s.paused.lock().unwrap_or_else(|e| e.into_inner());
        if pause {
            p.insert(tenant.clone());
        } else {
            p.remove(&tenant);
        }
        tracing::warn!(%tenant, pause, "Tenant paused or resumed by an operator.");
        metrics::gauge!("xero_writer_tenant_paused", "tenant" => tenant.clone()).set(if pause {
            1.0
        } else {
            0.0
        });
        (
            StatusCode::OK,
            format!("{tenant} {}", if pause { "paused" } else { "resumed" }),
        )
    }
    axum::Router::new()
        .route(
            "/tenants/paused",
            get(|State(s): State<OpsState>| async move {
                let p = s.paused.lock().unwrap_or_else(|e| e.into_inner()).clone();
                axum::Json(p.into_iter().collect::<Vec<_>>())
            }),
        )
        .route(
            "/tenants/{tenant}/pause",
            post(
                |State(s): State<OpsState>, h: HeaderMap, Path(t): Path<String>| set(s, h, t, true),
            ),
        )
        .route(
            "/tenants/{tenant}/resume",
            post(
                |State(s): State<OpsState>, h: HeaderMap, Path(t): Path<String>| {
                    set(s, h, t, false)
                },
            ),
        )
        .with_state(OpsState { config, paused })
}

async fn run_workers(
    cfg: Arc<Config>,
    nats_client: async_nats::Client,
    health: Health,
    mapping: ledgerline_mapping::MappingHandle,
    paused: Paused,
    shutdown: CancellationToken,
) {
    // Streams and buckets first.
    while health.is_ready().is_err() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
    let js = ledgerline_platform::nats::jetstream(&nats_client);
    let endpoint = match cfg.xero.endpoint("ledgerline-xero-writer") {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "Cannot build the HTTP client.");
            return;
        }
    };
    let mut tenants = cfg.tenants.clone();
    let mut delay = Duration::from_millis(200);
    let auth_code = cfg.xero.grant_type == config::GrantType::AuthorizationCode;
    while tenants.is_empty() {
        let found = cfg.xero.tenants(&endpoint, &js).await;
        match found {
            Ok(list) if !list.is_empty() => {
                tracing::info!(tenant = %list[0], "Discovered the Xero tenant; it receives store main.");
                tenants.push(TenantConfig {
                    tenant: list[0].clone(),
                    stores: vec!["main".into()],
                });
            }
            Ok(_) if auth_code => tracing::warn!(
                "No tenant connected yet; run `xero-writer connect` (or name one with --tenant)."
            ),
            Ok(_) => tracing::warn!("The Xero connection reaches no tenant yet."),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot reach Xero to discover the tenant; retrying.")
            }
        }
        if tenants.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
    let kv = |spec: ledgerline_contract::buckets::BucketSpec| {
        let js = js.clone();
        async move { js.get_key_value(spec.bucket).await }
    };
    let (Ok(ledger), Ok(contacts_kv), Ok(tokens), Ok(rate_kv)) = (
        kv(buckets::LEDGER).await,
        kv(buckets::CONTACTS).await,
        kv(buckets::XERO_TOKENS).await,
        kv(buckets::RATE_BUDGET).await,
    ) else {
        tracing::error!("Buckets missing after topology was ready.");
        return;
    };
    let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
    let shared = worker::Shared {
        config: cfg.clone(),
        publisher: publisher.clone(),
        ledger,
        contacts: contacts_kv,
        mapping,
        paused,
    };
    let mut set = tokio::task::JoinSet::new();
    // One app's egress, whatever the tenant: summed with every other process in RATE_BUDGET.
    let egress = Arc::new(
        ledgerline_xero_client::egress::Egress::new(
            &cfg.xero.client_id,
            cfg.xero.egress_allowance,
            cfg.xero.egress_cap,
        )
        .shared(rate_kv.clone())
        .alerts(publisher.clone()),
    );
    set.spawn(egress.clone().run(EGRESS_FLUSH, shutdown.clone()));
    for t in tenants {
        let spec = consumers::writer_orders(&t.tenant, &t.stores);
        let Some(consumer) = durable(&js, &spec, &shutdown).await else {
            return;
        };
        let cspec = consumers::writer_customers(&t.tenant, &t.stores);
        let Some(customers) = durable(&js, &cspec, &shutdown).await else {
            return;
        };
        let budget = Arc::new(
            ledgerline_xero_client::budget::Budget::new(&t.tenant, cfg.xero.limits)
                .background_share(cfg.backfill_day_share)
                .shared(rate_kv.clone(), cfg.xero.limits)
                .call_lease(cfg.xero.timeout + Duration::from_secs(5))
                .alerts(publisher.clone()),
        );
        let breaker = Arc::new(ledgerline_xero_client::budget::Breaker::new(
            &t.tenant,
            cfg.breaker_threshold,
            cfg.breaker_cooldown,
        ));
        let mut client = ledgerline_xero_client::Client::new(
            endpoint.clone(),
            &t.tenant,
            Some(tokens.clone()),
            budget,
            breaker,
            shutdown.clone(),
        )
        .with_egress(egress.clone());
        if auth_code {
            let connection = Arc::new(ledgerline_xero_client::oauth::Connection::new(
                &t.tenant,
                tokens.clone(),
                Some(publisher.clone()),
            ));
            set.spawn(connection.clone().watch(endpoint.clone(), shutdown.clone()));
            client = client.with_connection(connection);
        }
        let client = Arc::new(client);
        let desk = contacts::Desk::start(
            client.clone(),
            shared.contacts.clone(),
            cfg.batch_size,
            cfg.max_linger,
        );
        set.spawn(
            customers::CustomerWorker::new(shared.clone(), client.clone(), desk.clone())
                .run(customers, shutdown.clone()),
        );
        {
            // The reconciler's repair requests for this tenant.
            let (nats, client, ledger, publisher) = (
                nats_client.clone(),
                client.clone(),
                shared.ledger.clone(),
                publisher.clone(),
            );
            let rspec = consumers::writer_repairs(&t.tenant);
            let stop = shutdown.clone();
            set.spawn(async move {
                ledgerline_platform::consume::run_durable(nats, &rspec, 1, stop, move |m| {
                    let (client, ledger, publisher) =
                        (client.clone(), ledger.clone(), publisher.clone());
                    async move {
                        use prost::Message as _;
                        match ledgerline_contract::v1::RepairRequest::decode(m.payload.as_ref()) {
                            Ok(req) => repair::handle(&client, &ledger, &publisher, &req).await,
                            Err(_) => ledgerline_platform::consume::Outcome::Term,
                        }
                    }
                })
                .await
            });
        }
        let worker = worker::TenantWorker::new(shared.clone(), client, desk, spec.max_deliver);
        set.spawn(worker.run(consumer, shutdown.clone()));
    }
    while set.join_next().await.is_some() {}
}

/// How often this process adds its egress to the app's month in RATE_BUDGET (and checks the
/// alerts and the cap).
const EGRESS_FLUSH: Duration = Duration::from_secs(5);

/// The durable consumer of `spec`, created if needed; `None` when stopping.
async fn durable(
    js: &async_nats::jetstream::Context,
    spec: &ledgerline_contract::consumers::ConsumerSpec,
    shutdown: &CancellationToken,
) -> Option<async_nats::jetstream::consumer::PullConsumer> {
    loop {
        let _ = ledgerline_platform::nats::ensure_consumer(js, spec).await;
        match js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                spec.durable.clone(),
                spec.stream,
            )
            .await
        {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, durable = %spec.durable, "Consumer not available yet.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
