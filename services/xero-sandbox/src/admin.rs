//! Operator API under `/admin` (bearer `--admin-token`, never rate-limited): settings and time
//! scale, faults, tenant documents, counters and request log, token minting, reset.

use crate::App;
use crate::auth::{AccessToken, GrantKind};
use crate::resp::Resp;
use crate::state::Settings;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Duration as ChronoDuration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Routes mounted at `/admin`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/state", get(state))
        .route("/settings", get(get_settings).post(set_settings))
        .route("/tenants", get(tenants))
        .route("/tenants/{id}/documents", get(documents))
        .route("/tenants/{id}/period-lock", post(period_lock))
        .route("/tenants/{id}/payment-terms", post(payment_terms))
        .route("/tenants/{id}/reconnect", post(reconnect))
        .route("/tokens", post(mint_token))
        .route("/tokens/expire", post(expire_tokens))
        .route("/counters", get(counters))
        .route("/requests", get(requests))
        .route("/reset", post(reset))
        .route("/snapshot", post(snapshot))
}

/// The refusal for a missing or wrong admin token, if any.
fn refusal(app: &App, headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == app.config.admin_token);
    (!ok).then(|| (StatusCode::UNAUTHORIZED, "admin token required").into_response())
}

macro_rules! guard {
    ($app:expr, $h:expr) => {
        if let Some(r) = refusal(&$app, &$h) {
            return r;
        }
    };
}

fn settings_json(s: &Settings) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    let left = s
        .outage_until
        .map(|u| u.saturating_duration_since(Instant::now()).as_secs_f64())
        .unwrap_or(0.0);
    v["outage_secs_left"] = json!(left);
    v
}

async fn state(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    let s = app.settings.lock().unwrap().clone();
    let tenants: Vec<_> = app
        .store
        .lock()
        .unwrap()
        .tenants
        .iter()
        .map(tenant_json)
        .collect();
    axum::Json(json!({"settings": settings_json(&s), "tenants": tenants, "counters": &*app.counters.lock().unwrap()}))
        .into_response()
}

async fn get_settings(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    let s = app.settings.lock().unwrap().clone();
    axum::Json(settings_json(&s)).into_response()
}

/// Partial settings; each present field replaces the current value.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SettingsPatch {
    time_scale: Option<f64>,
    minute_limit: Option<u32>,
    day_limit: Option<u32>,
    concurrent_limit: Option<u32>,
    app_minute_limit: Option<u32>,
    access_token_secs: Option<u64>,
    refresh_grace_secs: Option<u64>,
    idempotency_secs: Option<u64>,
    atomic_batches: Option<bool>,
    bankers_rounding: Option<bool>,
    error_rate: Option<f64>,
    reset_rate: Option<f64>,
    latency_ms: Option<u64>,
    latency_jitter_ms: Option<u64>,
    /// Full outage for this many (real) seconds from now; 0 ends it.
    outage_secs: Option<f64>,
    /// The next N API calls get a 429.
    force_429: Option<u32>,
    force_429_problem: Option<String>,
    /// The next N matching writes are applied, then their response is cut.
    drop_after_apply: Option<u32>,
    drop_after_apply_endpoint: Option<String>,
    /// The next N matching writes are refused with a 400 ValidationException.
    refuse_next: Option<u32>,
    refuse_endpoint: Option<String>,
    /// `granular` or `broad`.
    app_kind: Option<String>,
}

async fn set_settings(State(app): State<Arc<App>>, h: HeaderMap, body: String) -> Response {
    guard!(app, h);
    let p: SettingsPatch = match serde_json::from_str(&body) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut s = app.settings.lock().unwrap();
    if let Some(v) = p.time_scale {
        if v <= 0.0 {
            return (StatusCode::BAD_REQUEST, "time_scale must be positive").into_response();
        }
        s.time_scale = v;
    }
    macro_rules! apply {
        ($($f:ident),*) => { $( if let Some(v) = p.$f { s.$f = v; } )* };
    }
    apply!(
        minute_limit,
        day_limit,
        concurrent_limit,
        app_minute_limit,
        access_token_secs,
        refresh_grace_secs,
        idempotency_secs,
        atomic_batches,
        bankers_rounding,
        error_rate,
        reset_rate,
        latency_ms,
        latency_jitter_ms,
        force_429,
        force_429_problem,
        drop_after_apply,
        drop_after_apply_endpoint,
        refuse_next,
        refuse_endpoint
    );
    if let Some(kind) = p.app_kind {
        if kind != "granular" && kind != "broad" {
            return (StatusCode::BAD_REQUEST, "app_kind is granular or broad").into_response();
        }
        s.app_kind = kind;
    }
    if let Some(secs) = p.outage_secs {
        s.outage_until = (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs));
    }
    axum::Json(settings_json(&s)).into_response()
}

fn tenant_json(t: &crate::state::Tenant) -> serde_json::Value {
    json!({
        "tenant_id": t.tenant_id,
        "connection_id": t.connection_id,
        "name": t.org.name,
        "connected": t.connected,
        "period_lock_date": t.org.period_lock_date,
        "payment_terms": t.org.payment_terms,
        "contacts": t.contacts.len(),
        "invoices": t.invoices.len(),
        "credit_notes": t.credit_notes.len(),
        "payments": t.payments.len(),
    })
}

async fn tenants(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    let list: Vec<_> = app
        .store
        .lock()
        .unwrap()
        .tenants
        .iter()
        .map(tenant_json)
        .collect();
    axum::Json(list).into_response()
}

/// Every document of a tenant, in Xero's JSON shapes, without spending API budget.
async fn documents(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<Uuid>) -> Response {
    guard!(app, h);
    let store = app.store.lock().unwrap();
    match store.tenants.iter().find(|t| t.tenant_id == id) {
        Some(t) => {
            let body = format!(
                r#"{{"Organisation":{},"Accounts":{},"TaxRates":{},"Currencies":{},"TrackingCategories":{},"Contacts":{},"Invoices":{},"CreditNotes":{},"Payments":{}}}"#,
                crate::resp::ser(&t.org),
                crate::resp::ser(&t.accounts),
                crate::resp::ser(&t.tax_rates),
                crate::resp::ser(&t.currencies),
                crate::resp::ser(&t.tracking_categories),
                crate::resp::ser(&t.contacts),
                crate::resp::ser(&t.invoices),
                crate::resp::ser(&t.credit_notes),
                crate::resp::ser(&t.payments),
            );
            Resp::json_bytes(StatusCode::OK, body.into_bytes()).into_response()
        }
        None => crate::resp::not_found().into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LockBody {
    date: Option<NaiveDate>,
}

async fn period_lock(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(id): Path<Uuid>,
    axum::Json(b): axum::Json<LockBody>,
) -> Response {
    guard!(app, h);
    let mut store = app.store.lock().unwrap();
    match store.tenant_mut(id) {
        Some(t) => {
            t.org.period_lock_date = b.date;
            axum::Json(tenant_json(t)).into_response()
        }
        None => crate::resp::not_found().into_response(),
    }
}

/// Sets (or, with an empty body `{}`, clears) the organisation's default payment terms, which
/// `GET /Organisation` returns as `PaymentTerms`.
async fn payment_terms(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(id): Path<Uuid>,
    axum::Json(b): axum::Json<crate::model::PaymentTerms>,
) -> Response {
    guard!(app, h);
    if let Some(e) = b.problem() {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let mut store = app.store.lock().unwrap();
    match store.tenant_mut(id) {
        Some(t) => {
            t.org.payment_terms = (b != Default::default()).then_some(b);
            axum::Json(tenant_json(t)).into_response()
        }
        None => crate::resp::not_found().into_response(),
    }
}

async fn reconnect(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<Uuid>) -> Response {
    guard!(app, h);
    let mut store = app.store.lock().unwrap();
    match store.tenant_mut(id) {
        Some(t) => {
            t.connected = true;
            axum::Json(tenant_json(t)).into_response()
        }
        None => crate::resp::not_found().into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MintBody {
    /// Tenants the token reaches (all when omitted).
    tenants: Option<Vec<Uuid>>,
    /// `client_credentials` (tenant header optional) or `authorization_code`.
    grant: Option<String>,
    /// Lifetime in nominal seconds (scaled); the configured lifetime when omitted.
    expires_in: Option<u64>,
}

/// Mints an access token without the OAuth dance.
async fn mint_token(State(app): State<Arc<App>>, h: HeaderMap, body: String) -> Response {
    guard!(app, h);
    let b: MintBody = if body.trim().is_empty() {
        MintBody::default()
    } else {
        match serde_json::from_str(&body) {
            Ok(b) => b,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    let s = app.settings.lock().unwrap().clone();
    let life = s.scaled_secs(b.expires_in.unwrap_or(s.access_token_secs));
    let mut store = app.store.lock().unwrap();
    let tenants = b
        .tenants
        .unwrap_or_else(|| store.tenants.iter().map(|t| t.tenant_id).collect());
    let kind = if b.grant.as_deref() == Some("authorization_code") {
        GrantKind::AuthorizationCode
    } else {
        GrantKind::ClientCredentials
    };
    let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    store.auth.access.insert(
        token.clone(),
        AccessToken {
            kind,
            tenants: tenants.clone(),
            auth_event_id: Uuid::new_v4(),
            expires: Utc::now() + ChronoDuration::from_std(life).unwrap_or_default(),
            scope: crate::auth::ALL_SCOPES.into(),
        },
    );
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": life.as_secs_f64().ceil() as u64, "tenants": tenants}))
        .into_response()
}

/// Makes every access token expired (to exercise 401 TokenExpired).
async fn expire_tokens(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    let mut store = app.store.lock().unwrap();
    let past = Utc::now() - ChronoDuration::seconds(1);
    for t in store.auth.access.values_mut() {
        t.expires = past;
    }
    axum::Json(json!({"expired": store.auth.access.len()})).into_response()
}

async fn counters(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    axum::Json(json!(&*app.counters.lock().unwrap())).into_response()
}

async fn requests(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    guard!(app, h);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200);
    let c = app.counters.lock().unwrap();
    let skip = c.log.len().saturating_sub(limit);
    let list: Vec<_> = c.log.iter().skip(skip).cloned().collect();
    axum::Json(list).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResetBody {
    /// Also restore every tenant's documents to the seed (default true).
    documents: Option<bool>,
}

/// Clears rate-limit windows, idempotency keys, counters, the request log and faults; by default
/// also restores documents to the seed (tenant ids and tokens are kept).
async fn reset(State(app): State<Arc<App>>, h: HeaderMap, body: String) -> Response {
    guard!(app, h);
    let b: ResetBody = serde_json::from_str(&body).unwrap_or_default();
    app.limits.lock().unwrap().reset();
    app.idem.lock().unwrap().reset();
    {
        let mut c = app.counters.lock().unwrap();
        let itr = c.webhook_itr_passed;
        *c = Default::default();
        c.webhook_itr_passed = itr;
    }
    {
        let mut s = app.settings.lock().unwrap();
        s.error_rate = 0.0;
        s.reset_rate = 0.0;
        s.latency_ms = 0;
        s.latency_jitter_ms = 0;
        s.outage_until = None;
        s.force_429 = 0;
        s.drop_after_apply = 0;
        s.refuse_next = 0;
    }
    if b.documents.unwrap_or(true) {
        let pristine = app.pristine.lock().unwrap().clone();
        let mut store = app.store.lock().unwrap();
        for (t, p) in store.tenants.iter_mut().zip(pristine) {
            let (id, conn) = (t.tenant_id, t.connection_id);
            *t = p;
            t.tenant_id = id;
            t.connection_id = conn;
        }
    }
    axum::Json(json!({"reset": true})).into_response()
}

async fn snapshot(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    guard!(app, h);
    match &app.config.snapshot {
        Some(p) => match crate::save_snapshot(&app, p) {
            Ok(()) => axum::Json(json!({"saved": p})).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        None => (StatusCode::BAD_REQUEST, "no --snapshot path configured").into_response(),
    }
}

/// Prometheus text exposition of the main counters.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let c = app.counters.lock().unwrap();
    let mut out = String::new();
    out.push_str("# HELP xero_sandbox_requests_total API responses by status code.\n");
    out.push_str("# TYPE xero_sandbox_requests_total counter\n");
    for (status, n) in &c.statuses {
        out.push_str(&format!(
            "xero_sandbox_requests_total{{status=\"{status}\"}} {n}\n"
        ));
    }
    for (name, help, v) in [
        (
            "xero_sandbox_throttled_total",
            "429 responses served.",
            c.throttled,
        ),
        (
            "xero_sandbox_idempotent_replays_total",
            "Responses replayed for a repeated Idempotency-Key.",
            c.idempotent_replays,
        ),
        (
            "xero_sandbox_webhooks_delivered_total",
            "Webhook events delivered.",
            c.webhooks_delivered,
        ),
        (
            "xero_sandbox_webhook_failures_total",
            "Failed webhook deliveries.",
            c.webhook_failures,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    out.push_str("# HELP xero_sandbox_egress_bytes_total Response body bytes sent, per tenant.\n");
    out.push_str("# TYPE xero_sandbox_egress_bytes_total counter\n");
    for (tenant, n) in &c.egress_bytes {
        out.push_str(&format!(
            "xero_sandbox_egress_bytes_total{{tenant=\"{tenant}\"}} {n}\n"
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
