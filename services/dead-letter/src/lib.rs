//! dead-letter: the operator's review queue. Dead letters from every stage become entries,
//! grouped into issues by stage + fault; an operator (through the API or the CLI) fixes an
//! issue once with a mapping-overlay rule and replays its entries through the pipeline.
//!
//! Shape: [`Config`] → [`DeadLetterService::build`] (connect, open the bucket) →
//! [`DeadLetterService::run`] (topology, the index, the DLQ and XERO consumers, upkeep, and
//! the API until the shutdown token fires). [`cli`] holds the client subcommands.

pub mod actions;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod decode;
pub mod entry;
pub mod filter;
pub mod intake;
pub mod jobs;
pub mod store;
pub mod timeline;
pub mod ui;
pub mod upkeep;
pub mod views;

pub use config::{Cli, Command, Config};

use crate::auth::{Role, Token, Tokens};
use ledgerline_contract::buckets;
use ledgerline_contract::consumers;
use ledgerline_platform::http::Health;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A built service, ready to run.
#[derive(Debug)]
pub struct DeadLetterService {
    config: Config,
    client: async_nats::Client,
    health: Health,
    tokens: Tokens,
}

impl DeadLetterService {
    /// Connects to NATS. With no tokens configured (loopback only, checked in [`Config`]), makes
    /// a one-time operator token and prints it once.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let _ = ledgerline_platform::metrics::recorder();
        let client = ledgerline_platform::nats::connect(&config.nats, "dead-letter").await?;
        let health = Health::new();
        health.set_nats(client.clone());
        let tokens = if config.tokens.is_empty() {
            let t = auth::one_time_token();
            // Printed, not logged: logs are shipped elsewhere, the terminal is the operator's.
            eprintln!(
                "dead-letter: no API tokens configured; this run's operator token (loopback only):\n  {t}"
            );
            Tokens::new(vec![Token::new(Role::Operator, t.into(), vec![])])
        } else {
            config.tokens.clone()
        };
        Ok(Self {
            config,
            client,
            health,
            tokens,
        })
    }

    /// Runs until `shutdown`, then finishes what is in flight.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let limits = self.config.nats.limits();
        let js = ledgerline_platform::nats::jetstream(&self.client);
        let specs = vec![consumers::dead_letter(), consumers::dead_letter_facts()];
        let mut tasks = vec![tokio::spawn(ledgerline_platform::nats::keep_topology(
            self.client.clone(),
            limits,
            specs,
            vec![buckets::DEAD_LETTERS, buckets::MAPPING_OVERLAY],
            self.health.clone(),
            shutdown.clone(),
        ))];
        let kv = loop {
            if self.health.is_ready().is_ok()
                && let Ok(kv) = js.get_key_value(buckets::DEAD_LETTERS.bucket).await
            {
                break kv;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        };
        let store = store::Store::new(kv);
        tasks.push(tokio::spawn(store.clone().follow(shutdown.clone())));
        let alerts = alerts::Alerts::new(
            self.config.alert_webhook.clone(),
            self.config.alert_open_threshold,
        );
        let actions = actions::Actions::new(
            store.clone(),
            self.client.clone(),
            self.config.mapping.clone(),
            self.config.reprocess_timeout,
        );
        let intake = intake::Intake::new(actions.clone(), alerts);
        let jobs = jobs::Jobs::new(actions.clone(), self.config.replay_rate);
        // Entries come in only once the index holds what was there, so a redelivered dead
        // letter is recognised as known.
        while !store.is_loaded() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
        let (client, stop, i) = (self.client.clone(), shutdown.clone(), intake.clone());
        tasks.push(tokio::spawn(async move {
            let spec = consumers::dead_letter();
            ledgerline_platform::consume::run_durable(client, &spec, 1, stop, move |m| {
                let i = i.clone();
                async move { i.dead_letter(m).await }
            })
            .await
        }));
        let (client, stop, i) = (self.client.clone(), shutdown.clone(), intake.clone());
        tasks.push(tokio::spawn(async move {
            let spec = consumers::dead_letter_facts();
            ledgerline_platform::consume::run_durable(client, &spec, 1, stop, move |m| {
                let i = i.clone();
                async move { i.fact(m).await }
            })
            .await
        }));
        tasks.push(tokio::spawn(upkeep::retention(
            store.clone(),
            self.config.retention,
            self.config.sweep_every,
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(upkeep::gauges(
            store.clone(),
            Duration::from_secs(5),
            shutdown.clone(),
        )));
        let app = api::AppState {
            actions,
            jobs,
            tokens: self.tokens.clone(),
            js: js.clone(),
        };
        let routes = api::router(app.clone()).merge(ui::router(ui::UiState {
            app,
            cookie_secure: self.config.cookie_secure,
            session_ttl: self.config.session_ttl,
            reconciler: ui::Reconciler(self.config.reconciler_url.clone()),
        }));
        tracing::info!(addr = %listener.local_addr()?, entries = store.len(), "dead-letter listening.");
        ledgerline_platform::http::serve(listener, routes, self.health.clone(), shutdown.clone())
            .await?;
        shutdown.cancel();
        ledgerline_platform::shutdown::finish(
            "dead-letter",
            &self.client,
            tasks,
            ledgerline_platform::shutdown::FINISH_GRACE,
        )
        .await;
        tracing::info!("dead-letter stopped.");
        Ok(())
    }
}
