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

/// The session cookie of the report page.
pub const SESSION: &str = "recon_session";

/// How long a page session lasts.
pub const SESSION_TTL: i64 = 8 * 3600;

/// The cookie value of a session that ends at `expires` (unix seconds): the expiry and an
/// HMAC-SHA256 of it under the API token, so it is worth nothing once the token changes.
pub fn session_value(token: &str, expires: i64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("recon-session|{expires}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{expires}.{sig}")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the caller may read: the bearer token, or a page session signed with it.
pub fn allowed(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = &state.api_token else {
        return Err((
            StatusCode::FORBIDDEN,
            "the reconciler's API is off: set RECON_API_TOKEN",
        )
            .into_response()
            .into());
    };
    let want = want.expose_secret();
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.trim().as_bytes().ct_eq(want.as_bytes())) {
        return Ok(());
    }
    if let Some(value) = cookie(headers, SESSION)
        && let Some(expires) = value.split('.').next().and_then(|e| e.parse::<i64>().ok())
        && expires > chrono::Utc::now().timestamp()
        && bool::from(
            value
                .as_bytes()
                .ct_eq(session_value(want, expires).as_bytes()),
        )
    {
        return Ok(());
    }
    Err((StatusCode::UNAUTHORIZED, "a bearer token is needed")
        .into_response()
        .into())
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
    uri: axum::http::Uri,
    Path((store, order)): Path<(String, String)>,
) -> Response {
    if let Err(r) = allowed(&state, &headers) {
        // A person following a link from the operator page signs in first.
        if r.status() == StatusCode::UNAUTHORIZED && crate::report::http::accepts_html(&headers) {
            let next = uri.path_and_query().map_or("/report", |p| p.as_str());
            return axum::response::Redirect::to(&format!(
                "/report/login?next={}",
                crate::report::page::urlencode(next)
            ))
            .into_response();
        }
        return *r;
    }
    match state.projection.load(&store, &order).await {
        Ok((view, rev)) if rev > 0 => Json(view).into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no such order in the projection").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
