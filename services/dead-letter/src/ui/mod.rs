//! The operator's page, served by the service itself: the review queue, an entry with its
//! one-click fixes, and an order's timeline. Server-rendered (maud, escaped by default), a
//! small script for live updates and bulk selection, no external assets, usable without
//! JavaScript.
//!
//! Sign-in takes the same tokens as the API; the session is an HttpOnly, `SameSite=Strict`
//! cookie (`Secure` by [`CookieSecure`]) signed by [`Tokens`], and every write carries the
//! session's CSRF token. Pages send a strict Content-Security-Policy.

mod entry;
mod layout;
mod orders;
mod queue;

use crate::api::AppState;
use crate::auth::{Caller, Tokens};
use crate::config::CookieSecure;
use axum::Router;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use maud::Markup;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What the page needs besides the API's state.
#[derive(Debug, Clone)]
pub struct UiState {
    /// The API's state (actions, jobs, tokens, JetStream).
    pub app: AppState,
    /// The session cookie's `Secure` rule.
    pub cookie_secure: CookieSecure,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Where the reconciler is, for links.
    pub reconciler: Reconciler,
}

/// The reconciler's address as a browser reaches it, when configured: the page links to its
/// report and to its view of an order.
#[derive(Debug, Clone, Default)]
pub struct Reconciler(pub Option<String>);

impl Reconciler {
    /// The reconciliation report.
    pub fn report(&self) -> Option<String> {
        self.0.as_ref().map(|u| format!("{u}/report"))
    }

    /// The reconciler's view of one order (its findings and both sides).
    pub fn order(&self, store: &str, order_id: &str) -> Option<String> {
        self.0
            .as_ref()
            .map(|u| format!("{u}/v1/orders/{}/{}", urlencode(store), urlencode(order_id)))
    }
}

impl FromRef<UiState> for Reconciler {
    fn from_ref(s: &UiState) -> Reconciler {
        s.reconciler.clone()
    }
}

impl FromRef<UiState> for Tokens {
    fn from_ref(s: &UiState) -> Tokens {
        s.app.tokens.clone()
    }
}

const SESSION: &str = "dl_session";
const FLASH: &str = "dl_flash";

/// The page's routes, under `/ui` (and `/` sends a person there).
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(queue::page))
        .route("/ui/bulk", post(queue::bulk))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/entries/{id}", get(entry::page))
        .route("/ui/entries/{id}/status", get(entry::status))
        .route("/ui/entries/{id}/replay", post(entry::replay))
        .route("/ui/entries/{id}/edit", post(entry::edit))
        .route("/ui/entries/{id}/discard", post(entry::discard))
        .route("/ui/entries/{id}/assign", post(entry::assign))
        .route("/ui/issues/{id}/fix", post(entry::fix))
        .route("/ui/orders", get(orders::search))
        .route("/ui/orders/{store}/{key}", get(orders::page))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
        .with_state(state)
}

/// A signed-in person: who, and their session (for the CSRF token).
#[derive(Debug, Clone)]
pub struct Session {
    /// Who they are.
    pub caller: Caller,
    /// The CSRF token their forms carry.
    pub csrf: String,
    /// Where the reconciler is (the header links to its report).
    pub reconciler: Reconciler,
}

impl Session {
    fn may_act(&self) -> bool {
        self.caller.operator().is_ok()
    }
}

/// No (valid) session: a page sends the person to sign in; a write is refused.
#[derive(Debug)]
pub struct SignIn {
    next: Option<String>,
}

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        match self.next {
            Some(next) => {
                Redirect::to(&format!("/ui/login?next={}", urlencode(&next))).into_response()
            }
            None => page_response(
                StatusCode::UNAUTHORIZED,
                layout::bare(
                    "Signed out",
                    layout::message("Your session has ended: sign in again."),
                ),
            ),
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<S: Send + Sync> FromRequestParts<S> for Session
where
    Tokens: FromRef<S>,
    Reconciler: FromRef<S>,
{
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, SignIn> {
        let tokens = Tokens::from_ref(state);
        let next = (parts.method == axum::http::Method::GET).then(|| {
            parts
                .uri
                .path_and_query()
                .map_or("/ui".to_owned(), |p| p.as_str().to_owned())
        });
        let value = cookie(&parts.headers, SESSION).ok_or(SignIn { next: next.clone() })?;
        let caller = tokens.session_caller(value, now()).ok_or(SignIn { next })?;
        Ok(Self {
            caller,
            csrf: tokens.csrf(value),
            reconciler: Reconciler::from_ref(state),
        })
    }
}

/// A form body of a signed-in person, checked for their session's CSRF token before it is
/// read: a missing or wrong token is 403, a form that does not parse 400.
#[derive(Debug)]
pub struct Form<T>(pub T);

#[derive(Deserialize)]
struct Csrf {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<S, T> axum::extract::FromRequest<S> for Form<T>
where
    S: Send + Sync,
    Tokens: FromRef<S>,
    Reconciler: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let req = axum::extract::Request::from_parts(parts, body);
        let body = <Bytes as axum::extract::FromRequest<S>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let c: Csrf = serde_html_form::from_bytes(&body).unwrap_or(Csrf {
            csrf: String::new(),
        });
        if c.csrf.is_empty()
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                c.csrf.as_bytes(),
                session.csrf.as_bytes(),
            ))
        {
            return Err(page_response(
                StatusCode::FORBIDDEN,
                layout::bare(
                    "Refused",
                    layout::message(
                        "This form is out of date or did not come from this page (its CSRF token does not match). Go back, reload, and try again.",
                    ),
                ),
            ));
        }
        serde_html_form::from_bytes(&body).map(Self).map_err(|e| {
            page_response(
                StatusCode::BAD_REQUEST,
                layout::bare(
                    "Bad form",
                    layout::message(&format!("The form could not be read: {e}")),
                ),
            )
        })
    }
}

/// An HTML response with the page's security headers.
pub fn page_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, axum::response::Html(markup.into_string())).into_response();
    secure_headers(r.headers_mut());
    r
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
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
}

/// A redirect after a write, with a one-time notice for the next page.
fn done(to: &str, notice: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    let v = format!(
        "{FLASH}={}; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict",
        urlencode(notice)
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The notice a write left, if any (the page clears it).
fn notice(headers: &HeaderMap) -> Option<String> {
    cookie(headers, FLASH)
        .map(urldecode)
        .filter(|s| !s.is_empty())
}

/// A page response that also clears the notice it showed.
fn shown(status: StatusCode, markup: Markup, had_notice: bool) -> Response {
    let mut r = page_response(status, markup);
    if had_notice {
        r.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("dl_flash=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"),
        );
    }
    r
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn urldecode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path of this page may follow a sign-in (never another site).
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/ui")
        .to_owned()
}

async fn login_page(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    page_response(
        StatusCode::OK,
        layout::login(&safe_next(q.next.as_deref()), None),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(state): State<UiState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(f) = serde_html_form::from_bytes::<LoginForm>(&body) else {
        return page_response(
            StatusCode::BAD_REQUEST,
            layout::login("/ui", Some("Enter a token.")),
        );
    };
    let next = safe_next(f.next.as_deref());
    let expires = now() + state.session_ttl.as_secs() as i64;
    let Some(value) = state.app.tokens.session(f.token.trim(), expires) else {
        return page_response(
            StatusCode::UNAUTHORIZED,
            layout::login(&next, Some("That token is not one of this service's.")),
        );
    };
    let secure = match state.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => over_https(&headers),
    };
    let cookie = format!(
        "{SESSION}={value}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict{}",
        state.session_ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie text is ASCII"),
    );
    r
}

/// Whether the person's browser reached us over HTTPS: a TLS-terminating proxy says so in
/// `X-Forwarded-Proto` or `Forwarded` (this service itself serves plain HTTP).
fn over_https(h: &HeaderMap) -> bool {
    let forwarded_proto = h
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = h
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

async fn logout(Form(_): Form<Csrf>) -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("dl_session=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    r
}

async fn css() -> Response {
    static_asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn static_asset(ct: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, ct)], body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_pages_paths_follow_a_sign_in() {
        assert_eq!(safe_next(Some("/ui/entries/dl-1")), "/ui/entries/dl-1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn a_proxy_that_terminated_tls_makes_the_cookie_secure() {
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=1.2.3.4;proto=https"),
        );
        assert!(over_https(&h));
    }

    #[test]
    fn notices_survive_their_cookie() {
        let s = "Rule applied; 2 entries replayed (SO-1 & \"x\")";
        assert_eq!(urldecode(&urlencode(s)), s);
    }
}
