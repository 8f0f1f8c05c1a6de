//! The REST API the resync uses, over a shared [`Store`], plus the ground truth.
//!
//! - `GET /Ordering/SalesOrders?ModifiedSince=<RFC 3339>&Paging.StartIndex=<n>&Paging.Size=<n>`
//!   (Basic auth): orders with `UpdatedDate >= ModifiedSince`, sorted by `(UpdatedDate, ID)`,
//!   `StartIndex` 0-based (default 0), `Size` default 50, at most 500. Answers
//!   `{"Results": [SalesOrder...], "TotalCount", "StartIndex", "Size"}`.
//! - `GET /Ordering/SalesOrder/ID/{id}` (Basic auth): one order, or 404.
//! - `GET /ground-truth`: the ground truth document (no auth; it is a test fixture).
//! - `GET /healthz`: `ok`.

use crate::model::SalesOrder;
use crate::store::Store;
use crate::truth::GroundTruth;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size served.
pub const MAX_PAGE_SIZE: usize = 500;

/// Basic-auth credentials the API accepts.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
struct AppState {
    store: Arc<Store>,
    creds: Arc<Credentials>,
}

/// One page of orders.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SalesOrderPage {
    /// The orders on this page.
    pub results: Vec<SalesOrder>,
    /// Orders matching the filter, all pages.
    pub total_count: usize,
    /// 0-based index of the first result.
    pub start_index: usize,
    /// Page size used.
    pub size: usize,
}

/// The router; bind it with `axum::serve`.
pub fn router(store: Arc<Store>, creds: Credentials) -> Router {
    Router::new()
        .route("/Ordering/SalesOrders", get(list_orders))
        .route("/Ordering/SalesOrder/ID/{id}", get(get_order))
        .route("/ground-truth", get(ground_truth))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(AppState {
            store,
            creds: Arc::new(creds),
        })
}

fn authorised(headers: &HeaderMap, creds: &Credentials) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", creds.username, creds.password);
    decoded == expected.as_bytes()
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"clarity-sim\"")],
        "unauthorised",
    )
        .into_response()
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

async fn list_orders(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorised(&headers, &st.creds) {
        return unauthorised();
    }
    let since = match q.get("ModifiedSince").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => return bad_request(format!("ModifiedSince: {e}")),
        },
    };
    let parse = |name: &str, default: usize| -> Result<usize, String> {
        q.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name} must be an integer"))
        })
    };
    let start = match parse("Paging.StartIndex", 0) {
        Ok(v) => v,
        Err(m) => return bad_request(m),
    };
    let size = match parse("Paging.Size", DEFAULT_PAGE_SIZE) {
        Ok(v) => v.clamp(1, MAX_PAGE_SIZE),
        Err(m) => return bad_request(m),
    };
    let page = st.store.with(|s| {
        let mut matching: Vec<&SalesOrder> = s
            .orders
            .values()
            .filter(|o| since.is_none_or(|t| o.updated_date >= t))
            .collect();
        matching.sort_by_key(|o| (o.updated_date, o.id));
        SalesOrderPage {
            total_count: matching.len(),
            results: matching
                .into_iter()
                .skip(start)
                .take(size)
                .cloned()
                .collect(),
            start_index: start,
            size,
        }
    });
    Json(page).into_response()
}

async fn get_order(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if !authorised(&headers, &st.creds) {
        return unauthorised();
    }
    match st.store.with(|s| s.orders.get(&id).cloned()) {
        Some(o) => Json(o).into_response(),
        None => (StatusCode::NOT_FOUND, "no such order").into_response(),
    }
}

async fn ground_truth(State(st): State<AppState>) -> Json<GroundTruth> {
    Json(st.store.with(GroundTruth::from_state))
}
