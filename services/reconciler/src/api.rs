//! The operator's read API (bearer `RECON_API_TOKEN`; without one it answers 403): open
//! findings, and one order's projection.

use crate::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

fn allowed(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = &state.api_token else {
        return Err((
            StatusCode::FORBIDDEN,
            "the reconciler's API is off: set RECON_API_TOKEN",
        )
            .into_response()
            .into());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(
        given
            .trim()
            .as_bytes()
            .ct_eq(want.expose_secret().as_bytes()),
    ) {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "a bearer token is needed")
            .into_response()
            .into())
    }
}

/// One open finding.
#[derive(Debug, Serialize)]
pub struct OpenFindingView {
    /// `<store>/<order id>`.
    pub order: String,
    /// Kind.
    pub kind: String,
    /// When it opened.
    pub opened_at: String,
    /// In words.
    pub summary: String,
}

/// Filters of `GET /v1/findings`.
#[derive(Debug, Default, Deserialize)]
pub struct FindingQuery {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this store.
    pub store: Option<String>,
}

/// `GET /v1/findings`.
pub async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FindingQuery>,
) -> Response {
    if let Err(r) = allowed(&state, &headers) {
        return *r;
    }
    let out: Vec<OpenFindingView> = state
        .projection
        .open_findings()
        .into_iter()
        .filter(|(order, kind, ..)| {
            q.kind.as_deref().is_none_or(|k| k == kind)
                && q.store
                    .as_deref()
                    .is_none_or(|s| order.split('/').next() == Some(s))
        })
        .map(|(order, kind, opened_at, summary)| OpenFindingView {
            order,
            kind,
            opened_at,
            summary,
        })
        .collect();
    Json(out).into_response()
}

/// `GET /v1/orders/{store}/{order}`: the order's view (404 when the reconciler has none).
pub async fn order(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((store, order)): Path<(String, String)>,
) -> Response {
    if let Err(r) = allowed(&state, &headers) {
        return *r;
    }
    match state.projection.load(&store, &order).await {
        Ok((view, rev)) if rev > 0 => Json(view).into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no such order in the projection").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
