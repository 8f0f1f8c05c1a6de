//! The Xero HTTP client for one tenant: its token source, rate budget, circuit breaker,
//! `Idempotency-Key` derived from the request, and errors typed by what the caller does next.

use crate::budget::{Breaker, Budget};
use crate::credentials::ClientCredentials;
use crate::endpoint::Endpoint;
use crate::error::XeroError;
use crate::model::{self, Response, ValidationError};
use crate::oauth::Connection;
use crate::tokens::TokenSource;
use async_nats::jetstream::kv;
use reqwest::Method;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The client for one tenant.
#[derive(Debug)]
pub struct Client {
    endpoint: Endpoint,
    tenant: String,
    tokens: TokenSource,
    /// The tenant's budget.
    pub budget: Arc<Budget>,
    /// The tenant's breaker.
    pub breaker: Arc<Breaker>,
    /// The app's egress (shared by every tenant's client), if counted.
    egress: Option<Arc<crate::egress::Egress>>,
    cancel: CancellationToken,
}

/// Derives a request's `Idempotency-Key` from its content (64 hex chars, under Xero's 128).
pub fn idempotency_key(
    method: &Method,
    path: &str,
    query: &[(&str, String)],
    body: &[u8],
) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b"\n");
    h.update(path);
    for (k, v) in query {
        h.update(b"\n");
        h.update(k);
        h.update(b"=");
        h.update(v);
    }
    h.update(b"\n");
    h.update(body);
    hex(&h.finalize())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn endpoint_label(path: &str) -> String {
    // `/Invoices/<id>` → `/Invoices/{id}` keeps label cardinality low.
    let mut out = String::new();
    for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        out.push('/');
        out.push_str(if i % 2 == 1 { "{id}" } else { seg });
    }
    out
}

impl Client {
    /// A client for `tenant`.
    pub fn new(
        endpoint: Endpoint,
        tenant: &str,
        tokens: Option<kv::Store>,
        budget: Arc<Budget>,
        breaker: Arc<Breaker>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            endpoint,
            tenant: tenant.to_owned(),
            tokens: TokenSource::ClientCredentials(Box::new(ClientCredentials::new(
                tenant, tokens,
            ))),
            budget,
            breaker,
            egress: None,
            cancel,
        }
    }

    /// Counts response bytes into the app's `egress` (and holds calls at its cap, if one is set).
    pub fn with_egress(mut self, egress: Arc<crate::egress::Egress>) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Waits while the app's egress cap holds calls: work waits for the next month, nothing is
    /// dropped. `false` if stopping.
    async fn egress_room(&self) -> bool {
        let Some(egress) = &self.egress else {
            return true;
        };
        let mut reported = false;
        while egress.over_cap() {
            if !reported {
                reported = true;
                tracing::warn!(tenant = %self.tenant, bytes = egress.month_bytes(), "The egress cap (XERO_EGRESS_CAP) is reached; holding Xero calls until the month ends.");
                metrics::counter!("xero_client_egress_holds_total", "tenant" => self.tenant.clone())
                    .increment(1);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => egress.flush().await,
                _ = self.cancel.cancelled() => return false,
            }
        }
        true
    }

    /// Uses `authorization_code` tokens from `connection` instead of client_credentials.
    pub fn with_connection(mut self, connection: Arc<Connection>) -> Self {
        self.tokens = TokenSource::AuthorizationCode(connection);
        self
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// False while the tenant is paused for want of a usable grant (authorization_code only).
    pub fn is_connected(&self) -> bool {
        self.tokens.is_connected()
    }

    /// `rejected`: the token Xero just answered 401 to.
    async fn access_token(&self, rejected: Option<&str>) -> Result<String, XeroError> {
        self.tokens.access_token(&self.endpoint, rejected).await
    }

    /// One Accounting API call with budget, breaker, retries of 429/409 and short 5xx retries.
    ///
    /// Each call is a span (`xero.call`: tenant, method, endpoint, status, elements) linked to
    /// the messages of the batch it works for (`ledgerline_platform::telemetry::with_links`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, XeroError> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "xero.call",
            otel.kind = "client",
            tenant = %self.tenant,
            http.request.method = %method,
            endpoint = %endpoint_label(path),
            lane = crate::budget::current_lane().label(),
            http.response.status_code = tracing::field::Empty,
            elements = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        ledgerline_platform::telemetry::link_to_batch(&span);
        let result = self
            .send(method, path, query, body, None)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(r) => span.record("elements", r.len()),
            Err(e) => span.record("error", tracing::field::display(e)),
        };
        result
    }

    /// A GET of what changed after `since` (RFC 3339, sent as `If-Modified-Since`), as
    /// [`Client::call`] otherwise.
    pub async fn get_modified_since(
        &self,
        path: &str,
        query: &[(&str, String)],
        since: &str,
    ) -> Result<Response, XeroError> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            "xero.call",
            otel.kind = "client",
            tenant = %self.tenant,
            http.request.method = "GET",
            endpoint = %endpoint_label(path),
            lane = crate::budget::current_lane().label(),
        );
        self.send(Method::GET, path, query, None, Some(since))
            .instrument(span)
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        modified_since: Option<&str>,
    ) -> Result<Response, XeroError> {
        let body_bytes = body;
        let idem = body_bytes
            .as_ref()
            .map(|b| idempotency_key(&method, path, query, b));
        let label = endpoint_label(path);
        let mut rejected: Option<String> = None;
        let mut server_errors = 0u32;
        loop {
            if self.breaker.is_open() {
                return Err(XeroError::Transient("circuit breaker open".into()));
            }
            if !self.egress_room().await {
                return Err(XeroError::Transient("stopping".into()));
            }
            let Some(_permit) = self.budget.acquire(&self.cancel).await else {
                return Err(XeroError::Transient("stopping".into()));
            };
            let token = match self.access_token(rejected.as_deref()).await {
                Ok(t) => t,
                Err(e) => {
                    if matches!(e, XeroError::Transient(_)) {
                        self.breaker.failure();
                    }
                    return Err(e);
                }
            };
            let mut req = self
                .endpoint
                .http
                .request(method.clone(), format!("{}{path}", self.endpoint.api_url))
                .bearer_auth(&token)
                .header("xero-tenant-id", &self.tenant)
                .header("accept", "application/json")
                .timeout(self.endpoint.timeout);
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(since) = modified_since {
                req = req.header("If-Modified-Since", since);
            }
            if let (Some(b), Some(k)) = (&body_bytes, &idem) {
                req = req
                    .header("content-type", "application/json")
                    .header("Idempotency-Key", k)
                    .body(b.clone());
            }
            let started = std::time::Instant::now();
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    metrics::counter!("xero_client_calls_total", "endpoint" => label.clone(), "status" => "error").increment(1);
                    self.breaker.failure();
                    server_errors += 1;
                    if server_errors < 3 && !self.breaker.is_open() {
                        self.backoff(server_errors).await;
                        continue;
                    }
                    return Err(XeroError::Transient(format!("{method} {path}: {e}")));
                }
            };
            let status = resp.status();
            tracing::Span::current().record("http.response.status_code", status.as_u16());
            metrics::counter!("xero_client_calls_total", "endpoint" => label.clone(), "status" => status.as_u16().to_string()).increment(1);
            metrics::histogram!("xero_client_call_duration_seconds", "endpoint" => label.clone())
                .record(started.elapsed().as_secs_f64());
            let header_u32 = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u32>().ok())
            };
            self.budget.observe(
                started,
                header_u32("x-minlimit-remaining"),
                header_u32("x-daylimit-remaining"),
            );
            let throttled = (status.as_u16() == 429).then(|| {
                let retry = header_u32("retry-after").unwrap_or(1).max(1);
                let problem = resp
                    .headers()
                    .get("x-rate-limit-problem")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("unknown")
                    .to_owned();
                (retry, problem)
            });
            // Every body counts as egress, a 429's and an error's too: read it whole.
            let body = resp.bytes().await;
            if let (Some(egress), Ok(b)) = (&self.egress, &body) {
                egress.record(&self.tenant, &label, b.len() as u64);
            }
            if let Some((retry, problem)) = throttled {
                self.budget
                    .pause(Duration::from_secs(u64::from(retry)), &problem);
                continue;
            }
            let text = match body.map(|b| String::from_utf8_lossy(&b).into_owned()) {
                Ok(t) => t,
                Err(e) => {
                    // The request was sent; the answer was lost. Callers look up before
                    // creating again (or the same Idempotency-Key replays the answer).
                    self.breaker.failure();
                    return Err(XeroError::Transient(format!(
                        "{method} {path}: response lost: {e}"
                    )));
                }
            };
            match status.as_u16() {
                200..=299 => {
                    self.breaker.success();
                    // Amounts keep Xero's digits (see `model`): none passes through f64.
                    return model::parse(&text)
                        .map_err(|e| XeroError::Transient(format!("unreadable response: {e}")));
                }
                401 if rejected.is_none() => {
                    rejected = Some(token);
                    continue;
                }
                401 | 403 if self.tokens.connection().is_some() => {
                    // A fresh token refused: consent revoked or the organisation disconnected.
                    // The connection pauses the tenant and raises the alert; no breaker needed.
                    let why: String = format!("{status} {}", validation_text(&text))
                        .chars()
                        .take(300)
                        .collect();
                    metrics::counter!("xero_client_auth_failures_total", "tenant" => self.tenant.clone()).increment(1);
                    if let Some(c) = self.tokens.connection() {
                        c.refused(&token, &why).await;
                    }
                    return Err(XeroError::Auth(why));
                }
                401 | 403 => {
                    // Revoked consent or a disconnected org: the breaker pauses the tenant
                    // (events wait in JetStream) and probes until it is reconnected.
                    tracing::error!(tenant = %self.tenant, %status, body = %text, "Xero refused this connection; pausing the tenant until it is reconnected.");
                    metrics::counter!("xero_client_auth_failures_total", "tenant" => self.tenant.clone()).increment(1);
                    self.breaker.failure();
                    return Err(XeroError::Auth(format!("{status}: {text}")));
                }
                404 => {
                    self.breaker.success();
                    return Err(XeroError::NotFound);
                }
                409 => {
                    // Same Idempotency-Key still in progress: wait for its answer.
                    self.backoff(1).await;
                    continue;
                }
                400..=499 => {
                    self.breaker.success();
                    return Err(XeroError::Validation(validation_text(&text)));
                }
                _ => {
                    self.breaker.failure();
                    server_errors += 1;
                    if server_errors < 3 && !self.breaker.is_open() {
                        self.backoff(server_errors).await;
                        continue;
                    }
                    return Err(XeroError::Transient(format!("{method} {path}: {status}")));
                }
            }
        }
    }

    async fn backoff(&self, attempt: u32) {
        let d = Duration::from_millis(100 * 2u64.pow(attempt.min(5)));
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.cancel.cancelled() => {}
        }
    }
}

/// The messages of a 400 body (a ValidationException lists them per element).
pub fn validation_text(text: &str) -> String {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Refused {
        elements: Vec<Element>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Element {
        validation_errors: Vec<ValidationError>,
    }
    let Ok(body) = serde_json::from_str::<Refused>(text) else {
        return text.to_owned();
    };
    let msgs: Vec<String> = body
        .elements
        .into_iter()
        .flat_map(|e| e.validation_errors)
        .map(|e| e.message)
        .collect();
    if msgs.is_empty() {
        body.message.unwrap_or_else(|| text.to_owned())
    } else {
        msgs.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_follow_content() {
        let a = idempotency_key(&Method::PUT, "/Invoices", &[], b"{}");
        let b = idempotency_key(&Method::PUT, "/Invoices", &[], b"{ }");
        assert_ne!(a, b);
        assert_eq!(a, idempotency_key(&Method::PUT, "/Invoices", &[], b"{}"));
        assert!(a.len() <= 128);
    }

    #[test]
    fn labels_hide_ids() {
        assert_eq!(endpoint_label("/Invoices/abc"), "/Invoices/{id}");
        assert_eq!(
            endpoint_label("/CreditNotes/x/Allocations"),
            "/CreditNotes/{id}/Allocations"
        );
    }

    #[test]
    fn validation_bodies() {
        let body = r#"{"ErrorNumber":10,"Type":"ValidationException","Elements":[{"ValidationErrors":[{"Message":"Invoice # must be unique."}]}]}"#;
        assert_eq!(validation_text(body), "Invoice # must be unique.");
    }
}
