//! `POST /webhooks/clarity/{store}`: verify on the raw bytes, store in RAW, then answer.
//!
//! Never 2xx unless JetStream acknowledged the message.

use crate::raw::{RawEvent, store_raw};
use crate::{AppState, Outcome};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ledgerline_platform::standard_webhooks::{Unverified, Verified, VerifyError, unix_now};
use serde::Deserialize;
use std::borrow::Cow;
use tracing::Instrument;

/// The closed list of event types of `api_version` 2026-11.
pub const EVENT_TYPES: [&str; 8] = [
    "sales_order.created",
    "sales_order.updated",
    "sales_order.status_changed",
    "sales_order.paid",
    "sales_order.voided",
    "sales_return.completed",
    "account.created",
    "account.updated",
];

/// An answer that is not a 2xx, with the reason label used in metrics.
#[derive(Debug)]
pub struct Rejection {
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message, "reason": self.reason })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The two fields ingest reads; borrowed, since they rarely hold escapes.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    ty: Option<Cow<'a, str>>,
}

/// The webhook handler.
pub async fn receive(
    State(state): State<std::sync::Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _in_flight = state.meters.in_flight();
    let span = tracing::info_span!(
        "ingest.webhook",
        store = %store,
        webhook_id = tracing::field::Empty,
        topic = tracing::field::Empty,
    );
    let result = accept(&state, &store, &headers, body)
        .instrument(span.clone())
        .await;
    match result {
        Ok(outcome) => {
            state.meters.accepted(&store, outcome);
            // Constant bodies: the hot path serialises nothing.
            let body = if outcome == Outcome::Duplicate {
                r#"{"status":"duplicate"}"#
            } else {
                r#"{"status":"stored"}"#
            };
            (
                StatusCode::ACCEPTED,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
        Err(rejection) => {
            let store_label = if state.stores.get(&store).is_some() {
                store
            } else {
                "unknown".to_owned()
            };
            metrics::counter!("ingest_webhooks_total", "store" => store_label, "outcome" => rejection.reason).increment(1);
            let _enter = span.enter();
            if rejection.status.is_server_error() {
                tracing::warn!(reason = rejection.reason, error = %rejection.message, "Webhook not stored; sender will retry.");
            } else {
                tracing::info!(
                    reason = rejection.reason,
                    status = rejection.status.as_u16(),
                    "Webhook rejected."
                );
            }
            rejection.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    store_name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Outcome, Rejection> {
    let store = state
        .stores
        .get(store_name)
        .ok_or_else(|| Rejection::new(StatusCode::NOT_FOUND, "unknown_store", "unknown store"))?;

    // Refuse on the declared length first, then cap what is read: an oversize body is never
    // buffered whole.
    let limit = state.config.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large(limit)),
        Err(e) => {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("cannot read body: {e}"),
            ));
        }
    };

    let verified = Unverified::from_headers(headers, bytes)
        .verify(&store.verifier, unix_now())
        .map_err(|e| {
            let reason = match e {
                VerifyError::MissingHeader(_) => "missing_signature",
                VerifyError::TimestampOutOfWindow(_) | VerifyError::MalformedTimestamp => {
                    "timestamp"
                }
                _ => "bad_signature",
            };
            Rejection::new(StatusCode::UNAUTHORIZED, reason, e.to_string())
        })?;
    tracing::Span::current().record("webhook_id", verified.id());

    let ty = topic(&verified)?;
    tracing::Span::current().record("topic", ty);
    let attempt = headers
        .get("x-clarity-attempt")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let event = RawEvent::webhook(verified, store_name, ty, attempt);
    store_raw(state, event).await.map_err(|e| {
        let mut r = Rejection::new(StatusCode::SERVICE_UNAVAILABLE, e.label(), e.to_string());
        r.retry_after = Some(state.config.retry_after);
        r
    })
}

/// The event type of a verified body whose `id` is its `webhook-id`: one of [`EVENT_TYPES`].
fn topic(verified: &Verified) -> Result<&'static str, Rejection> {
    let envelope: Envelope = serde_json::from_slice(verified.body()).map_err(|e| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "not_json",
            format!("body is not a JSON event: {e}"),
        )
    })?;
    let id = envelope.id.ok_or_else(|| {
        Rejection::new(StatusCode::BAD_REQUEST, "missing_id", "body has no \"id\"")
    })?;
    let ty = envelope.ty.ok_or_else(|| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "missing_type",
            "body has no \"type\"",
        )
    })?;
    if id.as_ref() != verified.id() {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "id_mismatch",
            "body \"id\" differs from webhook-id",
        ));
    }
    EVENT_TYPES
        .into_iter()
        .find(|t| *t == ty.as_ref())
        .ok_or_else(|| {
            Rejection::new(
                StatusCode::BAD_REQUEST,
                "unsupported_type",
                format!("unsupported event type {ty:?}"),
            )
        })
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("body over {limit} bytes"),
    )
}
