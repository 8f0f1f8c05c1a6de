//! `/api.xro/2.0/...`: auth, faults, rate limits and idempotency around the resource handlers.
//! Paths are matched case-insensitively, as Xero does.

use crate::auth::{AuthError, authorize};
use crate::idempotency::{self, Lookup};
use crate::limits::{Problem, Refusal};
use crate::resp::{Resp, bad_request, not_found};
use crate::{App, resources};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A parsed API request as the resource handlers see it.
#[derive(Debug)]
pub struct Req<'a> {
    pub method: &'a Method,
    /// Lower-cased path segments after `/api.xro/2.0/`, and the same segments as sent.
    pub segs: Vec<String>,
    pub raw_segs: Vec<String>,
    /// Query parameters, keys lower-cased.
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Req<'_> {
    /// A query parameter by lower-case name.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
}

fn uniform(a: u64) -> f64 {
    // Randomness for fault injection only; a v4 UUID is 122 random bits.
    let r = Uuid::new_v4().as_u128() as u64 ^ a;
    (r >> 11) as f64 / (1u64 << 53) as f64
}

fn refused(r: Refusal) -> Resp {
    let mut resp = Resp::text(StatusCode::TOO_MANY_REQUESTS, "")
        .with_header("retry-after", r.retry_after.to_string())
        .with_header("x-rate-limit-problem", r.problem.token());
    for (k, v) in r.remaining.headers() {
        resp = resp.with_header(k, v);
    }
    resp
}

/// Releases the tenant's in-flight slot however the request ends.
struct InFlight {
    app: Arc<App>,
    tenant: Uuid,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.app.limits.lock().unwrap().release(self.tenant);
    }
}

/// The host part of a live Xero URL, counted into [`MAX_URL`].
const XERO_HOST: &str = "https://api.xero.com";
/// The longest URL Xero answers (a 53rd GUID in `IDs` takes a URL past it).
pub const MAX_URL: usize = 2_000;

/// Entry point for every Accounting API call.
pub async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let (mut resp, tenant, endpoint) = handle_inner(&app, &method, &uri, &headers, &body).await;
    if let Outcome::Normal(r) = &resp
        && (method == Method::PUT || method == Method::POST)
        && r.status.is_success()
    {
        let mut s = app.settings.lock().unwrap();
        if s.drop_after_apply > 0
            && endpoint.contains(&s.drop_after_apply_endpoint.to_ascii_lowercase())
        {
            // Applied (or replayed under its Idempotency-Key), but the answer never arrives.
            s.drop_after_apply -= 1;
            resp = Outcome::Reset(r.status);
        }
    }
    let problem = match &resp {
        Outcome::Normal(r) => r
            .headers
            .iter()
            .find(|(k, _)| *k == "x-rate-limit-problem")
            .map(|(_, v)| v.as_str()),
        Outcome::Reset(_) => None,
    };
    // A cut connection sends no body.
    let bytes = match &resp {
        Outcome::Normal(r) => r.body.len() as u64,
        Outcome::Reset(_) => 0,
    };
    app.record(
        &method,
        &endpoint,
        tenant,
        crate::Answered {
            status: resp.status(),
            problem,
            took: started.elapsed(),
            bytes,
        },
    );
    match resp {
        Outcome::Normal(r) => r.into_response(),
        Outcome::Reset(headers_only) => {
            // Headers go out, then the body stream fails: the client sees the connection cut.
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                ))
            });
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = headers_only;
            r
        }
    }
}

/// How a call ends.
#[derive(Debug)]
pub enum Outcome {
    Normal(Resp),
    Reset(StatusCode),
}

impl Outcome {
    /// Status for counters.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Normal(r) => r.status,
            Outcome::Reset(s) => *s,
        }
    }
}

async fn handle_inner(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Outcome, Option<Uuid>, String) {
    let rest = uri.path().splitn(3, '/').nth(2).unwrap_or("");
    let rest = rest
        .strip_prefix("2.0")
        .or_else(|| rest.strip_prefix("2.0/"))
        .unwrap_or(rest);
    let raw_segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segs: Vec<String> = raw_segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let endpoint = endpoint_name(&segs);
    let settings = app.settings.lock().unwrap().clone();

    if let Some(until) = settings.outage_until
        && Instant::now() < until
    {
        let r = Resp::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The Xero API is currently offline for maintenance",
        );
        return (Outcome::Normal(r), None, endpoint);
    }
    // Xero's front door refuses long URLs before the API sees them (FACTS.md §2: 52 GUIDs in
    // `IDs` worked, 53 gave a 404), so they cost no call.
    let url_len = XERO_HOST.len() + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if url_len > MAX_URL {
        let r = Resp::text(StatusCode::NOT_FOUND, "The requested URL is too long");
        return (Outcome::Normal(r), None, endpoint);
    }
    let (tenant, scope) = match authorize(app, headers) {
        Ok(t) => t,
        Err(e) => return (Outcome::Normal(e.response()), None, endpoint),
    };
    if !crate::auth::scope_allows(
        &scope,
        method,
        segs.first().map(String::as_str).unwrap_or(""),
    ) {
        return (
            Outcome::Normal(AuthError::Unauthorized.response()),
            Some(tenant),
            endpoint,
        );
    }

    // Forced 429s come before counting, like a limit the caller cannot see.
    {
        let mut s = app.settings.lock().unwrap();
        if s.force_429 > 0 {
            s.force_429 -= 1;
            let problem = Problem::parse(&s.force_429_problem);
            let remaining = app.limits.lock().unwrap().peek(tenant, &s);
            let r = refused(Refusal {
                problem,
                retry_after: 1,
                remaining,
            });
            return (Outcome::Normal(r), Some(tenant), endpoint);
        }
    }
    let remaining = match app.limits.lock().unwrap().acquire(tenant, &settings) {
        Ok(r) => r,
        Err(r) => return (Outcome::Normal(refused(r)), Some(tenant), endpoint),
    };
    let _slot = InFlight {
        app: app.clone(),
        tenant,
    };
    let with_limits = |mut r: Resp| {
        for (k, v) in remaining.headers() {
            r = r.with_header(k, v);
        }
        r
    };

    // Added latency holds the in-flight slot, as a slow Xero would.
    if settings.latency_ms > 0 || settings.latency_jitter_ms > 0 {
        let jitter = (uniform(3) * settings.latency_jitter_ms as f64) as u64;
        tokio::time::sleep(Duration::from_millis(settings.latency_ms + jitter)).await;
    }
    if settings.error_rate > 0.0 && uniform(1) < settings.error_rate {
        let r = Resp::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred in Xero. Check the API Status page",
        );
        return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
    }
    if settings.reset_rate > 0.0 && uniform(2) < settings.reset_rate {
        return (Outcome::Reset(StatusCode::OK), Some(tenant), endpoint);
    }
    if *method == Method::PUT || *method == Method::POST {
        let mut s = app.settings.lock().unwrap();
        if s.refuse_next > 0 && endpoint.contains(&s.refuse_endpoint.to_ascii_lowercase()) {
            // As Xero refuses a payment to an account that does not take payments.
            s.refuse_next -= 1;
            let r = bad_request("Account type is invalid for making a payment to/from");
            return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
        }
    }

    let query: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| {
            q.0.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        })
        .unwrap_or_default();
    let req = Req {
        method,
        segs,
        raw_segs,
        query,
        headers,
        body,
    };

    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let key = key.filter(|_| *method == Method::PUT || *method == Method::POST);
    if let Some(k) = &key {
        if k.len() > idempotency::MAX_KEY_LEN {
            let r = bad_request("The Idempotency-Key header must be 128 characters or fewer");
            return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
        }
        let fp =
            idempotency::fingerprint(&tenant.to_string(), method.as_str(), &uri.to_string(), body);
        let window = settings.scaled_secs(settings.idempotency_secs);
        let lookup = app.idem.lock().unwrap().begin(k, fp, window);
        match lookup {
            Lookup::Fresh => {}
            Lookup::Replay(r) => {
                app.counters.lock().unwrap().idempotent_replays += 1;
                return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
            }
            Lookup::Mismatch => {
                let r = bad_request(&format!(
                    "Idempotency Key {k} is used with a different request"
                ));
                return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
            }
            Lookup::InProgress => {
                let r = Resp::text(
                    StatusCode::CONFLICT,
                    "A request with this Idempotency-Key is in progress",
                );
                return (Outcome::Normal(with_limits(r)), Some(tenant), endpoint);
            }
        }
    }
    let resp = resources::dispatch(app, tenant, &req, &settings);
    if let Some(k) = &key {
        if resp.status.is_server_error() {
            app.idem.lock().unwrap().abandon(k);
        } else {
            app.idem.lock().unwrap().finish(k, &resp);
        }
    }
    (Outcome::Normal(with_limits(resp)), Some(tenant), endpoint)
}

fn endpoint_name(segs: &[String]) -> String {
    let mut name = String::new();
    for (i, s) in segs.iter().enumerate() {
        name.push('/');
        if i % 2 == 1 && segs.first().is_some_and(|f| f != "organisation") {
            name.push_str("{id}");
        } else {
            name.push_str(s);
        }
    }
    if name.is_empty() { "/".into() } else { name }
}

/// 404 in plain text for any unknown path.
pub async fn fallback() -> Response {
    not_found().into_response()
}
