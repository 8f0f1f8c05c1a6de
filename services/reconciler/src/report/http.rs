//! `GET /report`: the report as JSON (the default for scripts), CSV (`format=csv`) or a page
//! (`format=html`, or a browser's `Accept`). The page signs a person in with the API token
//! (`/report/login`) to a session cookie signed with it; scripts send the bearer token.

use super::{Query as ReportQuery, make, page, text};
use crate::AppState;
use crate::api::{SESSION, SESSION_TTL, allowed, session_value};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// `GET /report` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Store (default: the first the reconciler checks).
    pub store: Option<String>,
    /// First day, YYYY-MM-DD (default: six days before `to`).
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (default: today, UTC).
    pub to: Option<String>,
    /// Whose organisation settings.
    pub tenant: Option<String>,
    /// `json`, `csv` or `html`.
    pub format: Option<String>,
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page_response(status: StatusCode, body: maud::Markup) -> Response {
    let mut r = (status, axum::response::Html(body.into_string())).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad(status: StatusCode, why: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": why.into() })),
    )
        .into_response()
}

fn wants_html(p: &Params, headers: &HeaderMap) -> bool {
    match p.format.as_deref() {
        Some(f) => f == "html",
        None => accepts_html(headers),
    }
}

/// Whether a browser asked (its `Accept` names `text/html`).
pub fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn date(text: Option<&str>, what: &str) -> Result<Option<chrono::NaiveDate>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} must be a date, YYYY-MM-DD (got {t:?})")),
    }
}

/// `GET /report`.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(p): Query<Params>,
) -> Response {
    let html = wants_html(&p, &headers);
    if let Err(r) = allowed(&state, &headers) {
        if html && r.status() == StatusCode::UNAUTHORIZED {
            let next = uri.path_and_query().map_or("/report", |p| p.as_str());
            return Redirect::to(&format!("/report/login?next={}", page::urlencode(next)))
                .into_response();
        }
        return *r;
    }
    if let Some(f) = p.format.as_deref()
        && !["json", "csv", "html"].contains(&f)
    {
        return bad(StatusCode::BAD_REQUEST, "format is json, csv or html");
    }
    let Some(report) = &state.report else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "the report's rows are not open yet",
        );
    };
    let (from, to) = match (date(p.from.as_deref(), "from"), date(p.to.as_deref(), "to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = from.unwrap_or_else(|| to - chrono::Duration::days(6));
    let store = p
        .store
        .clone()
        .unwrap_or_else(|| report.default_store.clone());
    let q = match ReportQuery::new(&store, from, to, p.tenant.clone()) {
        Ok(q) => q,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let r = match make(&report.rows, &report.state, &q).await {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match p.format.as_deref() {
        Some("csv") => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"reconciliation-{}-{}-{}.csv\"",
                        page::urlencode(&r.store),
                        r.from,
                        r.to
                    ),
                ),
            ],
            text::csv(&r),
        )
            .into_response(),
        _ if html => page_response(StatusCode::OK, page::render(&r, &report.links)),
        _ => axum::Json(r).into_response(),
    }
}

/// `GET /report/style.css`.
pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        page::CSS,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this service: never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/report".to_owned(),
    }
}

fn login_form(next: &str, error: Option<&str>) -> maud::Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Reconciliation report · Ledgerline" }
                link rel="stylesheet" href="/report/style.css";
            }
            body {
                main #main {
                    h1 { "Reconciliation report: sign in" }
                    @if let Some(e) = error { p.bad role="alert" { (e) } }
                    form method="post" action="/report/login" {
                        input type="hidden" name="next" value=(next);
                        p {
                            label for="token" { "The reconciler's API token (RECON_API_TOKEN) " }
                            input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// `GET /report/login`.
pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    page_response(
        StatusCode::OK,
        login_form(&safe_next(q.next.as_deref()), None),
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /report/login`: the token for an 8-hour session cookie.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(f) = serde_html_form::from_bytes::<LoginForm>(&body) else {
        return page_response(
            StatusCode::BAD_REQUEST,
            login_form("/report", Some("The form could not be read.")),
        );
    };
    let next = safe_next(f.next.as_deref());
    let Some(want) = &state.api_token else {
        return page_response(
            StatusCode::FORBIDDEN,
            login_form(
                &next,
                Some("The reconciler's API is off: set RECON_API_TOKEN."),
            ),
        );
    };
    let want = want.expose_secret();
    if !bool::from(f.token.trim().as_bytes().ct_eq(want.as_bytes())) {
        return page_response(
            StatusCode::UNAUTHORIZED,
            login_form(&next, Some("That token is not the reconciler's.")),
        );
    }
    let expires = chrono::Utc::now().timestamp() + SESSION_TTL;
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{SESSION}={}; Path=/; Max-Age={SESSION_TTL}; HttpOnly; SameSite=Strict{}",
        session_value(want, expires),
        if secure { "; Secure" } else { "" }
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
