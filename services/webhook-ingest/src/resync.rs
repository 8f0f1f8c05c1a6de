//! Resync: page through a store's REST API (`GET /Ordering/SalesOrders`, modified-since and
//! paging, Basic auth) and store every order as a `sales_order.updated` event whose id is
//! derived from (store, order id, version), so repeating a resync stores nothing twice.

use crate::config::{Config, ResyncArgs, StoreApi};
use crate::raw::{RawEvent, store_raw};
use crate::{AppState, Outcome};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

/// Orders per page requested from the store.
const PAGE_SIZE: usize = 100;

/// What a resync did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ResyncReport {
    /// Orders read from the store.
    pub orders: u64,
    /// Newly stored in RAW.
    pub stored: u64,
    /// Already in RAW.
    pub duplicates: u64,
    /// Each order read: id, number, version, when it last changed (not in the HTTP answer).
    #[serde(skip)]
    pub seen: Vec<ledgerline_contract::v1::StoreOrder>,
}

/// Whether a pass over the store's orders stores them in RAW or only lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store every order in RAW (deduplicated by store, id and version).
    Store,
    /// Only read them (the reconciler's look at what the store holds).
    List,
}

/// Why a resync stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// The store is not configured or has no REST API configured.
    #[error("{0}")]
    NotConfigured(String),
    /// The store's API failed.
    #[error("store API: {0}")]
    Api(String),
    /// RAW did not take an event.
    #[error("storing in RAW: {0}")]
    Store(#[from] ledgerline_platform::publish::PublishError),
}

#[derive(Deserialize)]
struct Page {
    #[serde(alias = "results", alias = "Items")]
    #[serde(rename = "Results")]
    results: Vec<Box<RawValue>>,
    #[serde(rename = "TotalCount", alias = "Total", default)]
    total: Option<u64>,
}

#[derive(Deserialize)]
struct OrderKeys {
    #[serde(rename = "ID")]
    id: serde_json::Value,
    #[serde(rename = "CustomKey", default)]
    number: Option<String>,
    #[serde(rename = "Version")]
    version: u64,
    #[serde(rename = "UpdatedDate", default)]
    updated: Option<String>,
}

/// Runs one resync of `store`, reporting progress through `progress(read, total)`.
pub async fn resync(
    state: &AppState,
    store: &str,
    since: Option<&str>,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
) -> Result<ResyncReport, ResyncError> {
    pass(state, store, since, Mode::Store, usize::MAX, progress).await
}

/// Reads `store`'s orders changed since `since` (at most `limit`), storing them in RAW in
/// [`Mode::Store`].
pub async fn pass(
    state: &AppState,
    store: &str,
    since: Option<&str>,
    mode: Mode,
    limit: usize,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
) -> Result<ResyncReport, ResyncError> {
    let api = state
        .stores
        .get(store)
        .ok_or_else(|| ResyncError::NotConfigured(format!("unknown store {store:?}")))?
        .api
        .ok_or_else(|| {
            ResyncError::NotConfigured(format!(
                "store {store:?} has no REST API configured (--store-api)"
            ))
        })?;
    let http = ledgerline_platform::tls::http_client("ledgerline-webhook-ingest")
        .map_err(|e| ResyncError::Api(e.to_string()))?;
    let mut report = ResyncReport::default();
    let mut start = 0usize;
    loop {
        let page = fetch_page(&http, &api, since, start).await?;
        let n = page.results.len();
        for order in page.results {
            let keys: OrderKeys = serde_json::from_str(order.get())
                .map_err(|e| ResyncError::Api(format!("order without ID/Version: {e}")))?;
            let order_id = match &keys.id {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            report.seen.push(ledgerline_contract::v1::StoreOrder {
                id: order_id.clone(),
                number: keys.number.clone().unwrap_or_default(),
                version: keys.version,
                updated_at: keys.updated.clone().unwrap_or_default(),
            });
            if mode == Mode::Store {
                let id = format!("resync_{store}_{order_id}_v{}", keys.version);
                let body = envelope(&id, store, keys.updated.as_deref(), order.get());
                match store_raw(
                    state,
                    RawEvent::resync(id, store, "sales_order.updated", body),
                )
                .await?
                {
                    Outcome::Stored => report.stored += 1,
                    Outcome::Duplicate => report.duplicates += 1,
                }
            }
            report.orders += 1;
            progress(report.orders, page.total);
        }
        if n < PAGE_SIZE || report.seen.len() >= limit {
            break;
        }
        start += n;
    }
    tracing::info!(
        store,
        orders = report.orders,
        stored = report.stored,
        duplicates = report.duplicates,
        "Resync finished."
    );
    Ok(report)
}

async fn fetch_page(
    http: &reqwest::Client,
    api: &StoreApi,
    since: Option<&str>,
    start: usize,
) -> Result<Page, ResyncError> {
    let url = format!("{}/Ordering/SalesOrders", api.url.trim_end_matches('/'));
    let mut query = vec![
        ("Paging.StartIndex", start.to_string()),
        ("Paging.Size", PAGE_SIZE.to_string()),
    ];
    if let Some(s) = since {
        query.push(("ModifiedSince", s.to_owned()));
    }
    let resp = http
        .get(&url)
        .basic_auth(&api.user, Some(api.password.expose_secret()))
        .query(&query)
        .send()
        .await
        .map_err(|e| ResyncError::Api(format!("GET {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ResyncError::Api(format!("GET {url}: HTTP {status}")));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ResyncError::Api(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ResyncError::Api(format!("GET {url}: unexpected body: {e}")))
}

/// A webhook-shaped body around an order read from the API, so the normalizer sees one format.
fn envelope(id: &str, store: &str, updated: Option<&str>, order_json: &str) -> Bytes {
    let timestamp = updated
        .map(str::to_owned)
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
    let head = serde_json::json!({
        "id": id,
        "type": "sales_order.updated",
        "timestamp": timestamp,
        "api_version": "2026-11",
        "store": { "CustomKey": store },
    })
    .to_string();
    // Splice the order's bytes in unchanged, so amounts keep their exact text.
    let head = head.strip_suffix('}').unwrap_or(&head);
    Bytes::from(format!("{head},\"data\":{order_json}}}"))
}

/// Orders one reply carries at most (a reply is one NATS message).
const REPLY_LIMIT: usize = 10_000;

/// Answers `ctl.store.<store>.orders` requests (one queue group across replicas) until
/// `shutdown`: the store's orders from its REST API, stored in RAW when asked to resync.
pub async fn serve_requests(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    use futures::StreamExt;
    use ledgerline_contract::v1::{StoreOrdersReply, StoreOrdersRequest};
    use prost::Message as _;
    let client = state.client.clone();
    let mut sub = loop {
        match client
            .queue_subscribe(
                ledgerline_contract::subjects::STORE_ORDERS_ALL,
                ledgerline_contract::subjects::STORE_ORDERS_GROUP.to_owned(),
            )
            .await
        {
            Ok(s) => break s,
            Err(error) => {
                tracing::warn!(%error, "Cannot subscribe to store order requests yet.");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    };
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = shutdown.cancelled() => return,
        };
        let Some(msg) = msg else { return };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        // ctl.store.<store>.orders
        let store = msg.subject.split('.').nth(2).unwrap_or_default().to_owned();
        let req = StoreOrdersRequest::decode(msg.payload.as_ref()).unwrap_or_default();
        let mode = if req.resync { Mode::Store } else { Mode::List };
        let since = (!req.since.is_empty()).then_some(req.since.as_str());
        let reply = match pass(&state, &store, since, mode, REPLY_LIMIT, &|_, _| {}).await {
            Ok(r) => StoreOrdersReply {
                truncated: r.seen.len() >= REPLY_LIMIT,
                orders: r.seen,
                stored: r.stored,
                duplicates: r.duplicates,
                error: String::new(),
            },
            Err(e) => StoreOrdersReply {
                error: e.to_string(),
                ..Default::default()
            },
        };
        if let Err(error) = client.publish(reply_to, reply.encode_to_vec().into()).await {
            tracing::warn!(%error, "Store order reply not sent.");
        }
    }
}

/// Query of `POST /resync/{store}`.
#[derive(Debug, Deserialize)]
pub struct ResyncQuery {
    /// Only orders modified at or after this instant.
    pub since: Option<String>,
}

/// `POST /resync/{store}?since=` with the operator bearer token.
pub async fn http_resync(
    State(state): State<std::sync::Arc<AppState>>,
    Path(store): Path<String>,
    Query(q): Query<ResyncQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = state.config.operator_token.as_ref() else {
        return (
            StatusCode::FORBIDDEN,
            "operator endpoints are disabled: set INGEST_OPERATOR_TOKEN",
        )
            .into_response();
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "bad operator token").into_response();
    }
    match resync(&state, &store, q.since.as_deref(), &|_, _| {}).await {
        Ok(report) => (StatusCode::OK, axum::Json(report)).into_response(),
        Err(e @ ResyncError::NotConfigured(_)) => {
            (StatusCode::NOT_FOUND, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// `webhook-ingest resync --store --since`: the same resync from the command line, with a
/// progress bar.
pub async fn run_command(config: Config, args: ResyncArgs) -> anyhow::Result<()> {
    let limits = config.nats.limits();
    let ingest = crate::Ingest::build(config).await?;
    let js = ingest.state.publisher.jetstream().clone();
    ledgerline_platform::nats::ensure_stream(&js, &ledgerline_contract::streams::RAW, limits)
        .await?;
    let bar = ledgerline_platform::progress::bar(
        0,
        !args.quiet,
        "{spinner} {pos}/{len} orders {wide_bar} {elapsed}",
    );
    let report = resync(
        &ingest.state,
        &args.store,
        args.since.as_deref(),
        &|done, total| {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "resync {}: {} orders read, {} stored, {} already stored",
        args.store, report.orders, report.stored, report.duplicates
    );
    Ok(())
}
