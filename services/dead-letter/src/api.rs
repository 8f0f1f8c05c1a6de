//! The HTTP API: JSON under `/v1`, bearer tokens in two roles, ETag/If-Match on entries, CSV
//! export, and `/openapi.json` generated from this code.

use crate::actions::{ActionError, Actions, FixRequest, FixResult, ReplayResult};
use crate::auth::{Caller, Tokens};
use crate::entry::{AuditEvent, Entry, FaultView, Note, Status, SuggestionView};
use crate::filter::Filter;
use crate::jobs::{Job, JobState, Jobs};
use crate::store::{Indexed, StoreError, Versioned};
use crate::timeline::{Detail, Step, StepKind, Timeline};
use crate::views::{
    self, EntryPage, EntrySummary, EntryView, IssueView, SortBy, SortOrder, issues_of, masked,
    matching, sort,
};
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Shared by the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Actions on entries.
    pub actions: Actions,
    /// Bulk replays.
    pub jobs: Jobs,
    /// API tokens.
    pub tokens: Tokens,
    /// JetStream, for order timelines.
    pub js: async_nats::jetstream::Context,
}

impl FromRef<AppState> for Tokens {
    fn from_ref(s: &AppState) -> Tokens {
        s.tokens.clone()
    }
}

/// An API error: its status, and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `unauthorized`, `forbidden`, `not_found`, `conflict`, `precondition_failed`,
    /// `invalid`, `unavailable`.
    pub code: String,
    /// In words.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401.
    pub fn unauthorized(m: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }

    /// 403.
    pub fn forbidden(m: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }

    fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }

    fn invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
    }

    fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_owned(),
                    message: self.message,
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dead-letter\""),
            );
        }
        r
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Store(StoreError::NotFound(m)) => Self::not_found(format!("no {m}")),
            ActionError::Store(StoreError::Conflict(id, rev)) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("entry {id} changed: it is at revision {rev} now (ETag \"{rev}\")"),
            ),
            ActionError::Store(StoreError::Refused(m)) => {
                Self::new(StatusCode::CONFLICT, "conflict", m)
            }
            ActionError::Store(StoreError::Kv(m)) | ActionError::Unavailable(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            ActionError::Invalid(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// `Json`, whose rejections (not JSON, wrong content type, wrong shape) answer in the API's
/// error format rather than as plain text.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r) => {
                let status = r.status();
                let code = match status {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::UNPROCESSABLE_ENTITY => "invalid",
                    StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                    _ => "bad_request",
                };
                Err(ApiError::new(status, code, r.body_text()))
            }
        }
    }
}

/// `Query`, whose rejections answer 400 in the API's error format.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// List parameters: the filters, then sort and paging.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Store.
    pub store: Option<String>,
    /// Stage.
    pub stage: Option<String>,
    /// Reason class.
    pub reason: Option<String>,
    /// Fault code.
    pub fault: Option<String>,
    /// Status (`open` covers `acknowledged` too).
    pub status: Option<Status>,
    /// Issue id.
    pub issue: Option<String>,
    /// Last seen at or after (RFC 3339).
    #[param(schema_with = crate::filter::optional_instant_schema)]
    pub from: Option<String>,
    /// Last seen before (RFC 3339).
    #[param(schema_with = crate::filter::optional_instant_schema)]
    pub to: Option<String>,
    /// Text: order number, customer, entity, error or id.
    pub q: Option<String>,
    /// What to sort by (default `last_seen`).
    pub sort: Option<SortBy>,
    /// `desc` (default) or `asc`.
    pub order: Option<SortOrder>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Entries to skip.
    #[param(minimum = 0, maximum = 4294967295u64)]
    pub offset: Option<u32>,
}

impl ListQuery {
    fn filter(&self) -> ApiResult<Filter> {
        if self.limit.is_some_and(|l| !(1..=500).contains(&l)) {
            return Err(ApiError::bad_request("limit is 1 to 500"));
        }
        Filter {
            store: self.store.clone(),
            stage: self.stage.clone(),
            reason: self.reason.clone(),
            fault: self.fault.clone(),
            status: self.status,
            issue: self.issue.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            q: self.q.clone(),
        }
        .normalized()
        .map_err(ApiError::bad_request)
    }
}

/// Lists entries.
#[utoipa::path(get, path = "/v1/entries", params(ListQuery),
    responses((status = 200, body = EntryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<EntryPage>> {
    let filter = q.filter()?;
    let limit = q.limit.unwrap_or(50);
    let offset = q.offset.unwrap_or(0) as usize;
    // Only the matching summaries are built; the sort key is all the rest needs.
    let mut entries = matching(state.actions.store(), &filter, &caller);
    sort(&mut entries, q.sort, q.order);
    let total = entries.len();
    let page: Vec<EntrySummary> = entries
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| EntrySummary::of(e, &caller))
        .collect();
    let next_offset = (offset + page.len() < total).then_some(offset + page.len());
    Ok(Json(EntryPage {
        total,
        entries: page,
        next_offset,
    }))
}

fn visible(state: &AppState, id: &str, caller: &Caller) -> ApiResult<Indexed> {
    state
        .actions
        .store()
        .get(id)
        .filter(|v| caller.sees(&v.entry.store))
        .ok_or_else(|| ApiError::not_found(format!("no entry {id}")))
}

/// The whole entry from KV, if the caller may see it.
async fn load(state: &AppState, id: &str, caller: &Caller) -> ApiResult<Versioned> {
    visible(state, id, caller)?;
    state
        .actions
        .store()
        .load(id)
        .await
        .map_err(ActionError::from)?
        .ok_or_else(|| ApiError::not_found(format!("no entry {id}")))
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not text"))?
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    if s == "*" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("If-Match {s:?} is not an ETag of an entry")))
}

async fn view(state: &AppState, v: Versioned, caller: &Caller) -> ApiResult<Response> {
    let view = views::entry_view(state.actions.store(), v, caller).await;
    let etag = format!("\"{}\"", view.revision);
    let mut r = Json(view).into_response();
    r.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("an ETag is ASCII"),
    );
    Ok(r)
}

/// Shows one entry: decoded payload, suggestions, audit trail.
#[utoipa::path(get, path = "/v1/entries/{id}", params(("id" = String, Path, description = "Entry id")),
    responses((status = 200, body = EntryView, headers(("ETag" = String))), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let v = load(&state, &id, &caller).await?;
    view(&state, v, &caller).await
}

/// The original payload as stored (operators only: it holds customer data).
#[utoipa::path(get, path = "/v1/entries/{id}/payload", params(("id" = String, Path, description = "Entry id")),
    responses((status = 200, description = "The payload bytes", content_type = "application/octet-stream"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn payload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.operator()?;
    let v = visible(&state, &id, &caller)?;
    let p = state
        .actions
        .store()
        .payload(&v.entry.id, v.entry.edited)
        .await
        .map_err(ActionError::from)?
        .ok_or_else(|| ApiError::not_found("no payload kept"))?;
    let full = state
        .actions
        .store()
        .load(&id)
        .await
        .map_err(ActionError::from)?;
    let ct = full
        .and_then(|f| {
            f.entry
                .headers
                .get(ledgerline_contract::headers::CONTENT_TYPE)
                .cloned()
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(([(header::CONTENT_TYPE, ct)], p).into_response())
}

/// Edits the payload (writer-stage entries); the next replay sends the edit.
#[utoipa::path(put, path = "/v1/entries/{id}/payload", params(("id" = String, Path, description = "Entry id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = EntryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])))]
async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.operator()?;
    visible(&state, &id, &caller)?;
    let v = state
        .actions
        .edit(&id, &caller.name, if_match(&headers)?, body)
        .await?;
    view(&state, v, &caller).await
}

/// Replays one entry.
#[utoipa::path(post, path = "/v1/entries/{id}/replay", params(("id" = String, Path, description = "Entry id")),
    responses((status = 200, body = ReplayResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ReplayResult>> {
    caller.operator()?;
    visible(&state, &id, &caller)?;
    Ok(Json(
        state
            .actions
            .replay(&id, &caller.name, if_match(&headers)?, 0)
            .await?,
    ))
}

/// A reason for discarding or ignoring.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReasonBody {
    /// Why: not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    pub reason: String,
}

async fn close(
    state: AppState,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    status: Status,
    reason: String,
) -> ApiResult<Response> {
    caller.operator()?;
    visible(&state, &id, &caller)?;
    let v = state
        .actions
        .close(&id, &caller.name, if_match(&headers)?, status, &reason)
        .await
        .map_err(|e| match e {
            ActionError::Invalid(m) => ApiError::invalid(m),
            e => e.into(),
        })?;
    view(&state, v, &caller).await
}

/// Discards an entry, with a reason.
#[utoipa::path(post, path = "/v1/entries/{id}/discard", params(("id" = String, Path, description = "Entry id")), request_body = ReasonBody,
    responses((status = 200, body = EntryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn discard(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Response> {
    close(state, caller, id, headers, Status::Discarded, b.reason).await
}

/// Ignores an entry, with a reason (kept, never removed).
#[utoipa::path(post, path = "/v1/entries/{id}/ignore", params(("id" = String, Path, description = "Entry id")), request_body = ReasonBody,
    responses((status = 200, body = EntryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn ignore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Response> {
    close(state, caller, id, headers, Status::Ignored, b.reason).await
}

/// Acknowledge, assign, tag or note, by `action`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Annotation {
    /// Marks an open entry seen.
    Acknowledge,
    /// Assigns the entry (an empty or missing assignee unassigns).
    Assign {
        /// Who, at most 200 characters.
        #[schema(max_length = 200)]
        assignee: Option<String>,
    },
    /// Adds and removes tags.
    Tag {
        /// Tags to add: 1 to 64 characters, not blank.
        #[serde(default)]
        #[schema(schema_with = tag_schema)]
        add: Vec<String>,
        /// Tags to remove.
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Adds a note.
    Note {
        /// The text: 1 to 10,000 characters, not blank.
        #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
        text: String,
    },
}

fn tag_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::Type;
    utoipa::openapi::ArrayBuilder::new()
        .items(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64))
                .pattern(Some(r"\S")),
        )
        .build()
}

/// Acknowledges, assigns, tags or notes an entry.
#[utoipa::path(post, path = "/v1/entries/{id}/annotate", params(("id" = String, Path, description = "Entry id")), request_body = Annotation,
    responses((status = 200, body = EntryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn annotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(a): ApiJson<Annotation>,
) -> ApiResult<Response> {
    caller.operator()?;
    visible(&state, &id, &caller)?;
    let expected = if_match(&headers)?;
    let who = caller.name.clone();
    let actions = &state.actions;
    // Lengths in characters, as the schema counts them.
    let v = match a {
        Annotation::Acknowledge => {
            actions
                .annotate(&id, &who, expected, "acknowledged", |e| {
                    (e.status == Status::Open).then(|| {
                        e.set_status(Status::Acknowledged);
                        "acknowledged".to_owned()
                    })
                })
                .await?
        }
        Annotation::Assign { assignee } => actions
            .assign(&id, &who, expected, &assignee.unwrap_or_default())
            .await
            .map_err(|e| match e {
                ActionError::Invalid(m) => ApiError::invalid(m),
                e => e.into(),
            })?,
        Annotation::Tag { add, remove } => {
            if add
                .iter()
                .any(|t| t.trim().is_empty() || t.chars().count() > 64)
            {
                return Err(ApiError::invalid("tags are 1 to 64 characters"));
            }
            actions
                .annotate(&id, &who, expected, "tagged", |e| {
                    let before = e.tags.clone();
                    e.tags.retain(|t| !remove.contains(t));
                    for t in &add {
                        if !e.tags.contains(&t.trim().to_owned()) {
                            e.tags.push(t.trim().to_owned());
                        }
                    }
                    (e.tags != before).then(|| format!("tags: {}", e.tags.join(", ")))
                })
                .await?
        }
        Annotation::Note { text } => {
            if text.trim().is_empty() || text.chars().count() > 10_000 {
                return Err(ApiError::invalid("a note is 1 to 10,000 characters"));
            }
            let text = text.trim().to_owned();
            actions
                .annotate(&id, &who, expected, "noted", |e| {
                    e.notes.push(Note {
                        at: crate::entry::now(),
                        who: who.clone(),
                        text: text.clone(),
                    });
                    Some("note added".to_owned())
                })
                .await?
        }
    };
    view(&state, v, &caller).await
}

/// Issue list parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IssueQuery {
    /// Store.
    pub store: Option<String>,
    /// Stage.
    pub stage: Option<String>,
    /// Only issues with open entries (default true).
    pub open: Option<bool>,
}

impl IssueQuery {
    fn filter(&self) -> Filter {
        Filter {
            store: self.store.clone(),
            stage: self.stage.clone(),
            ..Default::default()
        }
    }
}

/// Lists issues, the most open entries first.
#[utoipa::path(get, path = "/v1/issues", params(IssueQuery),
    responses((status = 200, body = Vec<IssueView>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn issues(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IssueQuery>,
) -> ApiResult<Json<Vec<IssueView>>> {
    Ok(Json(issues_of(
        state.actions.store(),
        &caller,
        &q.filter(),
        q.open.unwrap_or(true),
    )))
}

/// Shows one issue.
#[utoipa::path(get, path = "/v1/issues/{id}", params(("id" = String, Path, description = "Issue id")),
    responses((status = 200, body = IssueView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IssueView>> {
    issues_of(state.actions.store(), &caller, &Filter::default(), false)
        .into_iter()
        .find(|i| i.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no issue {id}")))
}

/// Applies a suggestion (or a rule) to an issue, then replays its open entries.
#[utoipa::path(post, path = "/v1/issues/{id}/fix", params(("id" = String, Path, description = "Issue id")), request_body = FixRequest,
    responses((status = 200, body = FixResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn fix(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FixRequest>,
) -> ApiResult<Json<FixResult>> {
    caller.operator()?;
    let c = caller.clone();
    state
        .actions
        .fix(&id, &req, &caller.name, move |e| c.sees(&e.store))
        .await
        .map(Json)
        .map_err(|e| match e {
            ActionError::Invalid(m) => ApiError::invalid(m),
            e => e.into(),
        })
}

/// A bulk replay request.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BulkReplay {
    /// What to replay.
    #[serde(default)]
    pub filter: Filter,
    /// Count only.
    #[serde(default)]
    pub dry_run: bool,
}

/// A dry run's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRun {
    /// Entries a run would replay.
    pub count: usize,
}

/// Starts a bulk replay (202 with the job), or counts what one would replay (`dry_run`).
#[utoipa::path(post, path = "/v1/replays", request_body = BulkReplay,
    responses((status = 202, body = Job), (status = 200, body = DryRun), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn start_bulk(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BulkReplay>,
) -> ApiResult<Response> {
    caller.operator()?;
    let filter = req.filter.normalized().map_err(ApiError::bad_request)?;
    if req.dry_run {
        let count = state.jobs.covered(&filter, &caller).len();
        return Ok(Json(DryRun { count }).into_response());
    }
    let job = state.jobs.start(filter, &caller).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// A bulk replay's progress.
#[utoipa::path(get, path = "/v1/replays/{id}", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn bulk_status(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    job_id(&id)?;
    state
        .jobs
        .get(&id)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// Cancels a bulk replay; it stops before its next entry.
#[utoipa::path(post, path = "/v1/replays/{id}/cancel", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn bulk_cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    caller.operator()?;
    job_id(&id)?;
    Ok(Json(state.jobs.cancel(&id).await?))
}

/// Job ids are `job-` and 32 hex digits; anything else names no job (and no KV key).
fn job_id(id: &str) -> ApiResult<()> {
    let ok = id
        .strip_prefix("job-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no job {id}")))
    }
}

/// Reprocess a window of RAW through the normalizer.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReprocessWindow {
    /// Store.
    pub store: String,
    /// RFC 3339: from this instant.
    #[schema(schema_with = crate::filter::instant_schema)]
    pub from: String,
    /// RFC 3339: up to this instant.
    #[schema(schema_with = crate::filter::instant_schema)]
    pub to: String,
    /// Count only.
    #[serde(default)]
    pub dry_run: bool,
}

/// What reprocessing a window did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowResult {
    /// RAW events in the window.
    pub raw_events: usize,
    /// Outcomes by name (`published`, `unchanged`, `dead_lettered`, ...).
    pub outcomes: BTreeMap<String, usize>,
    /// The mapping revision they were processed under.
    pub mapping_revision: String,
}

/// The most RAW events one window request covers.
const WINDOW_LIMIT: usize = 100_000;

/// Reprocesses a time window of RAW through the normalizer (nothing is appended to RAW).
#[utoipa::path(post, path = "/v1/reprocess", request_body = ReprocessWindow,
    responses((status = 200, body = WindowResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such store (for this token)", body = ErrorBody), (status = 422, description = "to is before from", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn reprocess_window(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ReprocessWindow>,
) -> ApiResult<Json<WindowResult>> {
    caller.operator()?;
    if !caller.sees(&req.store) || !ledgerline_contract::is_valid_token(&req.store) {
        return Err(ApiError::not_found(format!("no store {:?}", req.store)));
    }
    let parse = |name: &str, t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| ApiError::bad_request(format!("{name}: {t:?} is not RFC 3339 ({e})")))
    };
    let (from, to) = (parse("from", &req.from)?, parse("to", &req.to)?);
    if to < from {
        return Err(ApiError::invalid("to is before from"));
    }
    let seqs = state
        .actions
        .raw_window(&req.store, from, to, WINDOW_LIMIT)
        .await?;
    let mut out = WindowResult {
        raw_events: seqs.len(),
        outcomes: BTreeMap::new(),
        mapping_revision: String::new(),
    };
    if req.dry_run {
        return Ok(Json(out));
    }
    for chunk in seqs.chunks(100) {
        let reply = state
            .actions
            .request_reprocess(ledgerline_contract::v1::ReprocessRequest {
                raw_sequences: chunk.to_vec(),
                ..Default::default()
            })
            .await?;
        out.mapping_revision = reply.mapping_revision.clone();
        for r in &reply.results {
            let name = r
                .outcome()
                .as_str_name()
                .trim_start_matches("REPROCESS_OUTCOME_")
                .to_lowercase();
            *out.outcomes.entry(name).or_insert(0) += 1;
        }
    }
    metrics::counter!("dead_letter_actions_total", "action" => "reprocess_window").increment(1);
    Ok(Json(out))
}

/// An order's timeline: its webhooks, canonical events, Xero writes and dead letters, read by
/// subject (`order` is its id, or else its number).
#[utoipa::path(get, path = "/v1/orders/{store}/{order}/timeline",
    params(("store" = String, Path, description = "Store"), ("order" = String, Path, description = "Order id or number")),
    responses((status = 200, body = Timeline), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn order_timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path((store, order)): Path<(String, String)>,
) -> ApiResult<Json<Timeline>> {
    let t = crate::timeline::of_order(&state.js, state.actions.store(), &caller, &store, &order)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    if t.steps.is_empty() {
        return Err(ApiError::not_found(format!(
            "nothing stored for order {order} of store {store}"
        )));
    }
    Ok(Json(t))
}

/// Entries matching the filters, as CSV.
#[utoipa::path(get, path = "/v1/export.csv", params(ListQuery),
    responses((status = 200, description = "CSV, one entry per row", content_type = "text/csv"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    let mut entries = matching(state.actions.store(), &filter, &caller);
    sort(&mut entries, q.sort, q.order);
    let mut out = String::from(
        "id,issue,stage,reason,fault_code,fault_field,fault_value,status,store,entity,order_number,customer,attempts,occurrences,replays,first_seen,last_seen,assignee,tags,error\n",
    );
    for e in &entries {
        let row = [
            e.id.clone(),
            e.issue_key.clone(),
            e.stage.clone(),
            e.reason.clone(),
            e.fault.code.clone(),
            e.fault.field.clone(),
            e.fault.value.clone(),
            e.status.as_str().to_owned(),
            e.store.clone(),
            e.entity.clone(),
            e.order_number.clone(),
            masked(&e.customer, &caller),
            e.attempts.to_string(),
            e.occurrences.to_string(),
            e.replays.to_string(),
            e.first_seen.clone(),
            e.last_seen.clone(),
            e.assignee.clone().unwrap_or_default(),
            e.tags.join(" "),
            e.error.clone(),
        ];
        out.push_str(&row.iter().map(|c| csv(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dead-letters.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// One CSV field; a leading formula character is neutralised (CSV injection).
fn csv(s: &str) -> String {
    ledgerline_platform::text::csv_field(s)
}

/// The bearer scheme, and the error answers every operation can give, written once: 401 where
/// a token is needed, 400 where there are parameters or a body, 413/415/422 where there is a
/// body, 503 where NATS is needed.
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.put, &mut item.post]
                .into_iter()
                .flatten()
            {
                let mut add = |code: &str, what: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(what).into());
                };
                add("401", "No token, or an unknown one");
                add("503", "NATS is not reachable now");
                add("400", "A parameter or the body does not parse");
                if op.request_body.is_some() {
                    add("413", "The body is too large");
                    add("415", "The body is not of the documented content type");
                    add("422", "The body is JSON but not of the documented shape");
                }
            }
        }
    }
}

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Ledgerline dead-letter API", description = "The review queue: dead letters grouped into issues, with suggestions, fix and replay."),
    paths(list, show, payload, edit, replay, discard, ignore, annotate, issues, issue, fix, start_bulk, bulk_status, bulk_cancel, reprocess_window, export, order_timeline),
    components(schemas(SortBy, SortOrder, EntryPage, EntrySummary, EntryView, Entry, FaultView, SuggestionView, AuditEvent, Note, Status, ReplayResult, ReasonBody, Annotation, IssueView, FixRequest, FixResult, BulkReplay, DryRun, Job, JobState, Filter, ReprocessWindow, WindowResult, ErrorBody, ErrorDetail, Timeline, Step, StepKind, Detail)),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

/// The API routes.
pub fn router(state: AppState) -> Router {
    let doc = ApiDoc::openapi();
    Router::new()
        .route("/v1/entries", get(list))
        .route("/v1/entries/{id}", get(show))
        .route("/v1/entries/{id}/payload", get(payload).put(edit))
        .route("/v1/entries/{id}/replay", post(replay))
        .route("/v1/entries/{id}/discard", post(discard))
        .route("/v1/entries/{id}/ignore", post(ignore))
        .route("/v1/entries/{id}/annotate", post(annotate))
        .route("/v1/issues", get(issues))
        .route("/v1/issues/{id}", get(issue))
        .route("/v1/issues/{id}/fix", post(fix))
        .route("/v1/replays", post(start_bulk))
        .route("/v1/replays/{id}", get(bulk_status))
        .route("/v1/replays/{id}/cancel", post(bulk_cancel))
        .route("/v1/reprocess", post(reprocess_window))
        .route("/v1/export.csv", get(export))
        .route("/v1/orders/{store}/{order}/timeline", get(order_timeline))
        .route(
            "/openapi.json",
            get(move || async move { Json(doc.clone()) }),
        )
        .with_state(state)
}

impl JobState {
    /// Whether the job has stopped.
    pub fn stopped(self) -> bool {
        matches!(self, Self::Cancelled | Self::Finished)
    }
}
