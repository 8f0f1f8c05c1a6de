//! The operational HTTP surface every service shares: `/healthz`, `/readyz`, `/metrics`,
//! merged with the service's own routes.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/readyz` checks: the NATS connection is up and the topology is in place.
///
/// Xero (or any other peer) being down is not a readiness failure: an orchestrator must not
/// restart pods because a remote API is down.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    nats: std::sync::Mutex<Option<async_nats::Client>>,
    topology: AtomicBool,
}

impl Health {
    /// Starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client whose connection state readiness follows.
    pub fn set_nats(&self, client: async_nats::Client) {
        *self.inner.nats.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
    }

    /// Marks the streams, consumers and buckets as in place (or not).
    pub fn set_topology_ready(&self, ready: bool) {
        self.inner.topology.store(ready, Ordering::SeqCst);
    }

    /// Ready means connected to NATS with the topology in place.
    pub fn is_ready(&self) -> Result<(), &'static str> {
        let nats = self.inner.nats.lock().unwrap_or_else(|e| e.into_inner());
        match nats.as_ref() {
            None => Err("not connected to NATS yet"),
            Some(c) if c.connection_state() != async_nats::connection::State::Connected => {
                Err("NATS connection lost")
            }
            Some(_) if !self.inner.topology.load(Ordering::SeqCst) => {
                Err("streams not in place yet")
            }
            Some(_) => Ok(()),
        }
    }
}

/// The health and metrics routes.
pub fn ops_router(health: Health) -> Router {
    let prometheus = crate::metrics::recorder();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
        .route(
            "/metrics",
            get(move || {
                let p = prometheus.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        p.render(),
                    )
                }
            }),
        )
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    match health.is_ready() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// Serves `routes` plus the ops routes until `shutdown` is cancelled, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = routes.merge(ops_router(health));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
