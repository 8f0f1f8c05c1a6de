//! xero-sandbox: a faithful local imitation of Xero's Accounting API (identity, accounting
//! endpoints, rate limits, idempotency, webhooks) with an operator API for tests.
//!
//! Start it in-process with [`Sandbox::build`] and [`Sandbox::run`] on a bound listener.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod idempotency;
pub mod limits;
pub mod model;
pub mod resources;
pub mod resp;
pub mod seed;
pub mod state;
pub mod webhooks;
pub mod where_expr;
pub mod xjson;

pub use config::Config;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::{any, delete, get, post};
use serde::Serialize;
use state::{Settings, Store};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// One line of the request log.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub at: String,
    pub method: String,
    pub endpoint: String,
    pub tenant: Option<Uuid>,
    pub status: u16,
    pub millis: u64,
    /// Response body bytes (egress).
    pub bytes: u64,
}

/// What operators and /metrics read.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    /// Calls per `METHOD /endpoint` and tenant.
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// 429s served.
    pub throttled: u64,
    /// 429s served, by `X-Rate-Limit-Problem` (`minute`, `day`, `concurrent`, `appminute`).
    pub throttled_by_problem: BTreeMap<String, u64>,
    /// Responses replayed from an Idempotency-Key.
    pub idempotent_replays: u64,
    pub webhooks_delivered: u64,
    pub webhook_failures: u64,
    pub webhook_itr_passed: Option<bool>,
    /// Tokens issued by `/connect/token`, per grant type.
    pub token_grants: BTreeMap<String, u64>,
    /// Refreshes that presented an already rotated refresh token (two clients refreshing one
    /// grant, or a retry after a lost answer).
    pub refresh_reuses: u64,
    /// Egress as Xero meters it (FACTS.md §12): response body bytes of the Accounting API, as
    /// sent, per tenant (`-`: refused before a tenant was known).
    pub egress_bytes: BTreeMap<String, u64>,
    /// The same per app (client id), across its tenants.
    pub egress_app_bytes: BTreeMap<String, u64>,
    /// The same per `METHOD /endpoint` and tenant.
    pub egress_by_endpoint: BTreeMap<String, BTreeMap<String, u64>>,
    /// The last 2,000 API calls.
    #[serde(skip)]
    pub log: VecDeque<LogEntry>,
}

/// Shared state of a running sandbox.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Mutex<Store>,
    pub settings: Mutex<Settings>,
    pub limits: Mutex<limits::Limits>,
    pub idem: Mutex<idempotency::IdempotencyStore>,
    pub counters: Mutex<Counters>,
    webhook_tx: Mutex<Option<mpsc::UnboundedSender<webhooks::Event>>>,
    /// The seed the store was built from, kept so /admin/reset can restore documents.
    pristine: Mutex<Vec<state::Tenant>>,
}

/// How one API call was answered, for the counters.
struct Answered<'a> {
    status: StatusCode,
    /// `X-Rate-Limit-Problem` of a 429.
    problem: Option<&'a str>,
    took: Duration,
    /// Response body bytes (egress).
    bytes: u64,
}

impl App {
    fn record(&self, method: &Method, endpoint: &str, tenant: Option<Uuid>, a: Answered<'_>) {
        let Answered {
            status,
            problem,
            took,
            bytes,
        } = a;
        let mut c = self.counters.lock().unwrap();
        let key = format!("{method} {endpoint}");
        let who = tenant.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        *c.egress_bytes.entry(who.clone()).or_default() += bytes;
        *c.egress_app_bytes
            .entry(self.config.client_id.clone())
            .or_default() += bytes;
        *c.egress_by_endpoint
            .entry(key.clone())
            .or_default()
            .entry(who.clone())
            .or_default() += bytes;
        *c.calls.entry(key).or_default().entry(who).or_default() += 1;
        *c.statuses.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            c.throttled += 1;
            *c.throttled_by_problem
                .entry(problem.unwrap_or("unknown").to_owned())
                .or_default() += 1;
        }
        c.log.push_back(LogEntry {
            at: chrono::Utc::now().to_rfc3339(),
            method: method.to_string(),
            endpoint: endpoint.to_string(),
            tenant,
            status: status.as_u16(),
            millis: took.as_millis() as u64,
            bytes,
        });
        while c.log.len() > 2000 {
            c.log.pop_front();
        }
    }

    fn emit(
        &self,
        tenant: Uuid,
        category: webhooks::Category,
        kind: webhooks::EventKind,
        id: Uuid,
    ) {
        let tx = self.webhook_tx.lock().unwrap().clone();
        let Some(tx) = tx else { return };
        let data = if category == webhooks::Category::CreditNote {
            let store = self.store.lock().unwrap();
            store
                .tenants
                .iter()
                .find(|t| t.tenant_id == tenant)
                .and_then(|t| t.credit_notes.iter().find(|c| c.credit_note_id == id))
                .map(|c| serde_json::json!({"Type": c.kind, "Status": c.status}))
        } else {
            None
        };
        let _ = tx.send(webhooks::Event {
            tenant,
            category,
            kind,
            resource_id: id,
            data,
            at: chrono::Utc::now(),
        });
    }
}

/// A built sandbox, ready to [`run`](Sandbox::run).
#[derive(Debug, Clone)]
pub struct Sandbox {
    app: Arc<App>,
}

impl Sandbox {
    /// Builds state from the snapshot (if it exists), else the seed file, else `--tenants` demo
    /// organisations.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let pristine = match &config.seed {
            Some(p) => seed::load(p)?
                .tenants
                .into_iter()
                .map(seed::tenant)
                .collect(),
            None => seed::demo_tenants(config.tenants),
        };
        let store = match &config.snapshot {
            Some(p) if p.exists() => load_snapshot(p)?,
            _ => Store {
                tenants: pristine.clone(),
                auth: Default::default(),
            },
        };
        let app = App {
            settings: Mutex::new(Settings::from_config(&config)),
            config,
            store: Mutex::new(store),
            limits: Mutex::new(limits::Limits::default()),
            idem: Mutex::new(Default::default()),
            counters: Mutex::new(Counters::default()),
            webhook_tx: Mutex::new(None),
            pristine: Mutex::new(pristine),
        };
        Ok(Self { app: Arc::new(app) })
    }

    /// Tenant ids in order (the first is the custom-connection tenant).
    pub fn tenant_ids(&self) -> Vec<Uuid> {
        self.app
            .store
            .lock()
            .unwrap()
            .tenants
            .iter()
            .map(|t| t.tenant_id)
            .collect()
    }

    /// The shared state (for embedding tests).
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ready" }))
            .route("/metrics", get(admin::metrics))
            .route("/connect/token", post(auth::token))
            .route("/connect/revocation", post(auth::revoke))
            .route("/identity/authorize", get(auth::authorize_redirect))
            .route("/identity/connect/authorize", get(auth::authorize_redirect))
            .route("/connections", get(auth::connections))
            .route("/connections/{id}", delete(auth::delete_connection))
            .route("/Connections", get(auth::connections))
            .route("/Connections/{id}", delete(auth::delete_connection))
            .route("/api.xro/2.0", any(api::handle))
            .route("/api.xro/2.0/{*rest}", any(api::handle))
            .nest("/admin", admin::router())
            // Xero caps a request at 3.5 MB.
            .layer(axum::extract::DefaultBodyLimit::max(3_500_000))
            .fallback(api::fallback)
            .with_state(self.app.clone())
    }

    /// Serves until `shutdown` resolves, then writes the snapshot if one is configured.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let worker = self.app.config.webhook_url.clone().map(|url| {
            let (tx, rx) = mpsc::unbounded_channel();
            *self.app.webhook_tx.lock().unwrap() = Some(tx);
            tokio::spawn(webhooks::worker(
                self.app.clone(),
                url,
                self.app.config.webhook_key.clone(),
                rx,
            ))
        });
        let router = self.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        if let Some(w) = worker {
            w.abort();
        }
        if let Some(p) = &self.app.config.snapshot {
            save_snapshot(&self.app, p)?;
        }
        Ok(())
    }
}

/// A sandbox serving on a background task: what other crates' tests start in-process.
#[derive(Debug)]
pub struct RunningSandbox {
    /// `http://127.0.0.1:PORT`: identity URL (token endpoint at `/connect/token`).
    pub base_url: String,
    /// Tenant ids in order (the first is the custom-connection tenant).
    pub tenant_ids: Vec<Uuid>,
    /// Shared state, for direct inspection.
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningSandbox {
    /// The Accounting API base URL (`{base_url}/api.xro/2.0`).
    pub fn api_url(&self) -> String {
        format!("{}/api.xro/2.0", self.base_url)
    }

    /// Stops serving and waits for the snapshot (if any) to be written.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Builds a sandbox, binds `config.listen` (use port 0 for a free port) and serves it on a
/// background task until [`RunningSandbox::stop`] or drop.
pub async fn spawn(config: Config) -> anyhow::Result<RunningSandbox> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let sandbox = Sandbox::build(config)?;
    let tenant_ids = sandbox.tenant_ids();
    let app = sandbox.app();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sandbox.run(listener, async {
        let _ = rx.await;
    }));
    Ok(RunningSandbox {
        base_url,
        tenant_ids,
        app,
        stop: Some(tx),
        task: Some(task),
    })
}

fn load_snapshot(p: &Path) -> anyhow::Result<Store> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| anyhow::anyhow!("reading snapshot {}: {e}", p.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("parsing snapshot {}: {e}", p.display()))
}

/// Writes the store to `p` atomically (temp file, then rename).
pub fn save_snapshot(app: &App, p: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string(&*app.store.lock().unwrap())?;
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, p)?;
    Ok(())
}
