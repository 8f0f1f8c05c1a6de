//! reconciler: a per-order projection of both sides (the store's events, the writer's facts,
//! and what it reads in Xero itself), drift found within seconds through Xero's webhooks and
//! within a polling interval without them, published on RECON and repaired through the
//! pipeline by policy. It never writes to Xero.
//!
//! Shape: [`Config`] → [`Reconciler::build`] (connect) → [`Reconciler::run`] (topology, the
//! projection's consumers, the Xero clients, the poll, the store check, the SLA sweep, and HTTP:
//! `/webhooks/xero` and the read API, until the shutdown token fires).

pub mod actions;
pub mod api;
pub mod config;
pub mod findings;
pub mod hooks;
pub mod intake;
pub mod projection;
pub mod rebuild;
pub mod report;
pub mod store_check;
pub mod view;
pub mod xero;

pub use config::{Cli, Command, Config};

use crate::actions::Actions;
use crate::projection::Projection;
use ledgerline_contract::{buckets, consumers};
use ledgerline_platform::consume::{Outcome, run_durable};
use ledgerline_platform::http::Health;
use ledgerline_platform::publish::Publisher;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Xero's webhook signing key.
    pub webhook_key: Option<SecretString>,
    /// Stores webhook deliveries.
    pub publisher: Publisher,
    /// The projection.
    pub projection: Projection,
    /// The read API's token.
    pub api_token: Option<SecretString>,
    /// The report's rows and settings.
    pub report: Option<report::ReportState>,
}

/// A built reconciler, ready to run.
#[derive(Debug)]
pub struct Reconciler {
    config: Arc<Config>,
    client: async_nats::Client,
    health: Health,
}

impl Reconciler {
    /// Connects to NATS (checking its version).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let _ = ledgerline_platform::metrics::recorder();
        let client = ledgerline_platform::nats::connect(&config.nats, "reconciler").await?;
        let health = Health::new();
        health.set_nats(client.clone());
        tracing::info!(api = %config.xero.api_url, poll_interval = ?config.poll_interval, day_share = config.day_share, webhooks = config.webhook_key.is_some(), "reconciler configured.");
        for warning in config.poll_warnings() {
            tracing::warn!("{warning}");
        }
        Ok(Self {
            config: Arc::new(config),
            client,
            health,
        })
    }

    /// Runs until `shutdown`.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let cfg = self.config.clone();
        let mut tasks = vec![tokio::spawn(ledgerline_platform::nats::keep_topology(
            self.client.clone(),
            cfg.nats.limits(),
            consumers::reconciler().to_vec(),
            vec![
                buckets::RECON_PROJECTION,
                buckets::RECON_STATE,
                buckets::RECON_REPORT,
                buckets::XERO_TOKENS,
                buckets::RATE_BUDGET,
            ],
            self.health.clone(),
            shutdown.clone(),
        ))];
        let js = ledgerline_platform::nats::jetstream(&self.client);
        let (projection_kv, state_kv, report_kv) = loop {
            if self.health.is_ready().is_ok()
                && let (Ok(p), Ok(s), Ok(r)) = (
                    js.get_key_value(buckets::RECON_PROJECTION.bucket).await,
                    js.get_key_value(buckets::RECON_STATE.bucket).await,
                    js.get_key_value(buckets::RECON_REPORT.bucket).await,
                )
            {
                break (p, s, r);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        };
        let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
        let actions = Actions::new(
            publisher.clone(),
            self.client.clone(),
            cfg.policies.clone(),
            cfg.actions_per_minute,
        );
        let projection = Projection::new(
            projection_kv,
            publisher.clone(),
            Some(actions.clone()),
            cfg.slas,
        );
        let rows = report::rows::RowStore::new(report_kv.clone(), cfg.report_rules());
        let projection = projection.with_rows(rows.clone());
        tasks.push(tokio::spawn(
            rows.run(Duration::from_millis(100), shutdown.clone()),
        ));
        match projection.load_all().await {
            Ok(n) => tracing::info!(orders = n, "Projection loaded."),
            Err(e) => {
                tracing::warn!(error = %e, "Projection not loaded; findings and SLAs follow new events.")
            }
        }
        let [orders, facts, observed, hooks, dlq] = consumers::reconciler();
        for (spec, which) in [(orders, 0u8), (facts, 1), (observed, 2), (dlq, 3)] {
            let (client, stop, p) = (self.client.clone(), shutdown.clone(), projection.clone());
            tasks.push(tokio::spawn(async move {
                run_durable(client, &spec, 16, stop, move |m| {
                    let p = p.clone();
                    async move {
                        match which {
                            0 => intake::order_event(&p, &m).await,
                            1 => intake::fact(&p, &m).await,
                            2 => intake::observation(&p, &m).await,
                            _ => intake::dead_letter(&p, &m).await,
                        }
                    }
                })
                .await
            }));
        }
        // Xero: the tenants' clients once a tenant is known, then the webhook deliveries'
        // lookups and the poll.
        let tenants: Arc<tokio::sync::OnceCell<xero::Tenants>> = Default::default();
        {
            let (cfg, js, tenants, stop, actions) = (
                cfg.clone(),
                js.clone(),
                tenants.clone(),
                shutdown.clone(),
                actions.clone(),
            );
            let (publisher, state_kv) = (publisher.clone(), state_kv.clone());
            tasks.push(tokio::spawn(async move {
                let mut inner = Vec::new();
                let Some(list) = discover(&cfg, &js, &stop).await else {
                    return;
                };
                actions.set_default_tenant(&list[0]);
                let built = match xero::clients(&cfg, &js, &list, &stop, &mut inner).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot build the Xero clients.");
                        return;
                    }
                };
                let _ = tenants.set(built.clone());
                poll_loop(&cfg, &built, &state_kv, &publisher, &stop).await;
                for t in inner {
                    t.abort();
                }
            }));
        }
        {
            let (client, stop, tenants, publisher, projection) = (
                self.client.clone(),
                shutdown.clone(),
                tenants.clone(),
                publisher.clone(),
                projection.clone(),
            );
            tasks.push(tokio::spawn(async move {
                run_durable(client, &hooks, 2, stop, move |m| {
                    let (tenants, publisher, projection) =
                        (tenants.clone(), publisher.clone(), projection.clone());
                    async move {
                        let Some(t) = tenants.get() else {
                            return Outcome::Nak(Some(Duration::from_secs(1)));
                        };
                        match xero::delivery(t, &publisher, &projection, &m.payload).await {
                            Ok(_) => Outcome::Ack,
                            Err(e) => {
                                tracing::warn!(error = %e, "Xero webhook delivery not looked up yet.");
                                Outcome::Nak(Some(Duration::from_secs(2)))
                            }
                        }
                    }
                })
                .await
            }));
        }
        tasks.push(tokio::spawn(sweep(
            projection.clone(),
            cfg.sweep_every,
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(store_loop(
            cfg.clone(),
            projection.clone(),
            actions.clone(),
            state_kv.clone(),
            shutdown.clone(),
        )));
        let state = AppState {
            webhook_key: cfg.webhook_key.clone(),
            publisher,
            projection,
            api_token: cfg.api_token.clone(),
            report: Some(report::ReportState {
                rows: report_kv,
                state: state_kv.clone(),
                links: report::page::Links {
                    dead_letter: cfg.dead_letter_url.clone(),
                },
                default_store: cfg.stores.first().cloned().unwrap_or_else(|| "main".into()),
            }),
        };
        let routes = axum::Router::new()
            .route("/webhooks/xero", axum::routing::post(hooks::receive))
            .route("/v1/findings", axum::routing::get(api::findings))
            .route("/v1/orders/{store}/{order}", axum::routing::get(api::order))
            .route("/report", axum::routing::get(report::http::report))
            .route(
                "/report/login",
                axum::routing::get(report::http::login_page).post(report::http::login),
            )
            .route("/report/style.css", axum::routing::get(report::http::css))
            .layer(axum::extract::DefaultBodyLimit::max(hooks::MAX_BODY))
            .with_state(state);
        tracing::info!(addr = %listener.local_addr()?, "reconciler listening.");
        ledgerline_platform::http::serve(listener, routes, self.health.clone(), shutdown.clone())
            .await?;
        shutdown.cancel();
        ledgerline_platform::shutdown::finish(
            "reconciler",
            &self.client,
            tasks,
            ledgerline_platform::shutdown::FINISH_GRACE,
        )
        .await;
        tracing::info!("reconciler stopped.");
        Ok(())
    }
}

/// The tenants this app reaches, when first known; `None` when stopping.
async fn discover(
    cfg: &Config,
    js: &async_nats::jetstream::Context,
    stop: &CancellationToken,
) -> Option<Vec<String>> {
    let endpoint = match cfg.xero.endpoint("ledgerline-reconciler") {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "Cannot build the HTTP client.");
            return None;
        }
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match cfg.xero.tenants(&endpoint, js).await {
            Ok(list) if !list.is_empty() => return Some(list),
            Ok(_) => tracing::warn!("No Xero tenant connected yet."),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot reach Xero to discover tenants; retrying.")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Polls every tenant every `poll_interval`, from an hour before the first poll.
async fn poll_loop(
    cfg: &Config,
    tenants: &xero::Tenants,
    state: &async_nats::jetstream::kv::Store,
    publisher: &Publisher,
    stop: &CancellationToken,
) {
    let first = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut org_read: std::collections::BTreeMap<String, std::time::Instant> = Default::default();
    loop {
        for (tenant, client) in tenants.0.iter() {
            // The report's timezone and base currency: read at start, then daily.
            if org_read
                .get(tenant)
                .is_none_or(|t| t.elapsed() > Duration::from_secs(86_400))
            {
                match report::org::refresh(client, tenant, state).await {
                    Ok(o) => {
                        tracing::info!(%tenant, timezone = %o.timezone, base = %o.base_currency, "Organisation settings read for the report.");
                        org_read.insert(tenant.clone(), std::time::Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!(%tenant, error = %e, "Organisation settings not read; the report keeps the last ones.")
                    }
                }
            }
            match xero::poll(client, tenant, state, publisher, &first).await {
                Ok(n) => tracing::debug!(%tenant, observations = n, "Polled Xero."),
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "Poll of Xero failed; the next one tries again.")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Evaluates again the orders whose SLA has run out, and keeps the gauges.
async fn sweep(p: Projection, every: Duration, stop: CancellationToken) {
    loop {
        for key in p.take_due() {
            let mut parts = key.splitn(3, '.');
            let (_, Some(store), Some(order)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let Err(e) = p.update(store, order, true, |_| false).await {
                tracing::warn!(error = %e, %key, "SLA check failed; it is tried again on the next change.");
            }
        }
        p.gauges();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Asks each store's API (through webhook-ingest) for changed orders every `store_interval`.
async fn store_loop(
    cfg: Arc<Config>,
    p: Projection,
    actions: Actions,
    state: async_nats::jetstream::kv::Store,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.store_interval) => {}
            _ = stop.cancelled() => return,
        }
        for store in &cfg.stores {
            match store_check::check(&p, &actions, &state, store, cfg.slas.settle).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(%store, orders = n, "The store has orders the pipeline never saw.")
                }
                Err(e) => {
                    tracing::warn!(%store, error = %e, "The store's orders could not be read now; trying again next time.")
                }
            }
        }
    }
}
