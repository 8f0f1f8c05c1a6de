//! normalizer: raw Clarity webhooks (RAW) become canonical protobuf events (ORDERS, CUSTOMERS)
//! by a declarative mapping; what cannot be normalised goes to the DLQ.
//!
//! Shape: [`Config`] → [`Normalizer::build`] (connect, load the mapping) → [`Normalizer::run`]
//! (topology, mapping reloads, the durable consumer, ops HTTP until the shutdown token fires).
//! The transform itself is pure: [`transform::transform`].

pub mod address;
pub mod clarity;
pub mod config;
pub mod error;
pub mod json;
pub mod lines;
pub mod pipeline;
pub mod replay;
pub mod reprocess;
pub mod transform;

pub use config::{Cli, Command, Config};
pub use error::TransformError;
pub use pipeline::{Handled, Pipeline};

use axum::Router;
use ledgerline_contract::{buckets, consumers};
use ledgerline_mapping::{MappingHandle, MappingSource};
use ledgerline_platform::http::Health;
use ledgerline_platform::publish::Publisher;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A built service, ready to run.
#[derive(Debug)]
pub struct Normalizer {
    config: Config,
    client: async_nats::Client,
    mapping: Arc<MappingSource>,
    pipeline: Pipeline,
    health: Health,
}

impl Normalizer {
    /// Connects to NATS and loads the mapping (a mapping that does not validate stops the start).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Install the recorder first, so the mapping's revision gauge set on load is kept.
        let _ = ledgerline_platform::metrics::recorder();
        let (mapping, handle) = MappingSource::load(config.mapping.clone())?;
        let client = ledgerline_platform::nats::connect(&config.nats, "normalizer").await?;
        let js = ledgerline_platform::nats::jetstream(&client);
        let publisher = Publisher::new(js, config.publish_timeout);
        let pipeline = Pipeline::new(publisher, handle, config.retry_delays.clone());
        let health = Health::new();
        health.set_nats(client.clone());
        Ok(Self {
            config,
            client,
            mapping,
            pipeline,
            health,
        })
    }

    /// The current mapping.
    pub fn mapping(&self) -> MappingHandle {
        self.mapping.handle()
    }

    /// Consumes RAW and serves the ops routes until `shutdown`, then drains in-flight work.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let limits = self.config.nats.limits();
        let js = ledgerline_platform::nats::jetstream(&self.client);
        let spec = consumers::normalizer();
        let tasks = vec![
            tokio::spawn(ledgerline_platform::nats::keep_topology(
                self.client.clone(),
                limits,
                vec![spec.clone()],
                vec![buckets::MAPPING_OVERLAY],
                self.health.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(
                self.mapping
                    .clone()
                    .follow_overlay(js.clone(), shutdown.clone()),
            ),
            tokio::spawn(
                self.mapping
                    .clone()
                    .follow_file(self.config.mapping_poll, shutdown.clone()),
            ),
            tokio::spawn(reprocess::serve(
                self.client.clone(),
                js.clone(),
                self.pipeline.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(consume(
                self.client.clone(),
                self.pipeline.clone(),
                self.config.concurrency,
                shutdown.clone(),
            )),
        ];
        tracing::info!(addr = %listener.local_addr()?, revision = %self.pipeline.mapping().revision, "normalizer listening.");
        ledgerline_platform::http::serve(
            listener,
            Router::new(),
            self.health.clone(),
            shutdown.clone(),
        )
        .await?;
        shutdown.cancel();
        ledgerline_platform::shutdown::finish(
            "normalizer",
            &self.client,
            tasks,
            ledgerline_platform::shutdown::FINISH_GRACE,
        )
        .await;
        tracing::info!("normalizer stopped.");
        Ok(())
    }
}

/// Waits for the topology, then runs the durable consumer until `shutdown`.
async fn consume(
    client: async_nats::Client,
    pipeline: Pipeline,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let spec = consumers::normalizer();
    ledgerline_platform::consume::run_durable(client, &spec, concurrency, shutdown, move |m| {
        let p = pipeline.clone();
        async move { p.handle_message(m).await }
    })
    .await;
}
