//! webhook-ingest: the front door. Verifies Clarity's Standard Webhooks signatures on the raw
//! bytes, stores each event in the RAW stream, and answers 2xx only after JetStream acknowledged
//! it. Also runs operator-triggered resyncs from the store's REST API.
//!
//! Shape: [`Config`] (validated at start) → [`Ingest::build`] (connect, topology) →
//! [`Ingest::run`] (HTTP until the shutdown token fires).

pub mod config;
pub mod meters;
pub mod raw;
pub mod resync;
pub mod routes;
pub mod stores;

pub use config::{Cli, Command, Config};

use axum::Router;
use axum::routing::post;
use ledgerline_contract::buckets;
use ledgerline_platform::http::Health;
use ledgerline_platform::publish::Publisher;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What happened to an accepted webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly stored.
    Stored,
    /// Already in RAW (same `webhook-id` inside the duplicate window): nothing new stored.
    Duplicate,
}

impl Outcome {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Stored => "accepted",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Shared by every request.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Stores and their verifiers (reloadable).
    pub stores: stores::Stores,
    /// NATS connection.
    pub client: async_nats::Client,
    /// RAW publisher.
    pub publisher: Publisher,
    /// The hot path's metric handles.
    pub meters: Arc<meters::Meters>,
}

/// A built service, ready to run.
#[derive(Debug)]
pub struct Ingest {
    state: AppState,
    health: Health,
}

impl Ingest {
    /// Connects to NATS (checking its version) and prepares the state.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let client = ledgerline_platform::nats::connect(&config.nats, "webhook-ingest").await?;
        let js = ledgerline_platform::nats::jetstream(&client);
        let publisher = Publisher::new(js, config.publish_timeout);
        let stores = stores::Stores::new(config.stores.clone(), config.tolerance_secs);
        tracing::info!(stores = ?stores.names(), max_body = config.max_body, "webhook-ingest configured.");
        let health = Health::new();
        health.set_nats(client.clone());
        Ok(Self {
            state: AppState {
                config: Arc::new(config),
                stores,
                client,
                publisher,
                meters: Arc::default(),
            },
            health,
        })
    }

    /// The routes, without the ops routes (for tests that drive the router directly).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/clarity/{store}", post(routes::receive))
            .route("/resync/{store}", post(resync::http_resync))
            // Behind one Arc: axum clones the state for every request, and AppState holds two
            // NATS clients' worth of Arcs (2-3 % of the hot path's CPU as a plain clone).
            .with_state(Arc::new(self.state.clone()))
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let limits = self.state.config.nats.limits();
        let js = self.state.publisher.jetstream().clone();
        let tasks = [
            tokio::spawn(ledgerline_platform::nats::keep_topology(
                self.state.client.clone(),
                limits,
                vec![],
                vec![buckets::INGEST_SECRETS],
                self.health.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(stores::watch_overlay(
                js,
                self.state.stores.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(stores::reload_on_sighup(
                self.state.config.reload.clone(),
                self.state.stores.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(resync::serve_requests(self.state.clone(), shutdown.clone())),
        ];
        tracing::info!(addr = %listener.local_addr()?, "webhook-ingest listening.");
        ledgerline_platform::http::serve(
            listener,
            self.router(),
            self.health.clone(),
            shutdown.clone(),
        )
        .await?;
        shutdown.cancel();
        ledgerline_platform::shutdown::finish(
            "webhook-ingest",
            &self.state.client,
            tasks,
            ledgerline_platform::shutdown::FINISH_GRACE,
        )
        .await;
        tracing::info!("webhook-ingest stopped.");
        Ok(())
    }
}
