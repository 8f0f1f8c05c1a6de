//! One entry: what failed and why, the suggestions with a one-click "apply and replay", the
//! decoded payload (masked for viewers), the audit trail, and the operator's actions. After an
//! action the page follows the entry live (replayed, then written to Xero with its number).

use super::layout::{self, csrf, when};
use super::{Form, Session, UiState, done, notice, page_response, shown};
use crate::actions::{ActionError, FixRequest};
use crate::entry::Status;
use crate::views::{EntryView, entry_view};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
pub struct EntryQuery {
    /// Follow the entry live (set after an action).
    watch: Option<u8>,
}

async fn load(state: &UiState, session: &Session, id: &str) -> Option<EntryView> {
    let store = state.app.actions.store();
    let visible = store
        .get(id)
        .is_some_and(|v| session.caller.sees(&v.entry.store));
    if !visible {
        return None;
    }
    let v = store.load(id).await.ok().flatten()?;
    Some(entry_view(store, v, &session.caller).await)
}

fn not_found(session: &Session) -> Response {
    page_response(
        StatusCode::NOT_FOUND,
        layout::page(
            "No such entry",
            session,
            None,
            layout::message(
                "There is no such entry, or it is in a store your token does not cover.",
            ),
        ),
    )
}

/// `GET /ui/entries/{id}`.
pub(super) async fn page(
    State(state): State<UiState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Response {
    let Some(v) = load(&state, &session, &id).await else {
        return not_found(&session);
    };
    let notice = notice(&headers);
    let e = &v.entry;
    let title = format!(
        "{} · {}",
        if e.order_number.is_empty() {
            e.entity.as_str()
        } else {
            e.order_number.as_str()
        },
        e.issue_key
    );
    let act = session.may_act() && e.status.replayable();
    let body = html! {
        (live(&v, q.watch.is_some()))
        div.columns {
            section aria-labelledby="what-h" {
                h2 #what-h { "What failed" }
                pre.error { (e.error) }
                dl.facts {
                    dt { "Status" } dd #status { (layout::status(e.status)) }
                    dt { "Issue" } dd { a href={ "/ui?status=any&issue=" (e.issue) } { (e.issue_key) } }
                    dt { "Stage" } dd { (e.stage) " · " (e.reason) }
                    @if !e.fault.code.is_empty() {
                        dt { "At fault" } dd { (e.fault.code) @if !e.fault.field.is_empty() { " · " (e.fault.field) " = " code { (e.fault.value) } } }
                    }
                    dt { "Store" } dd { (e.store) }
                    dt { "Order" } dd {
                        (if e.order_number.is_empty() { "-" } else { e.order_number.as_str() })
                        @if let Some((store, oid)) = e.entity.split_once('/') {
                            " · " a href={ "/ui/orders/" (store) "/" (oid) } { "timeline" }
                        }
                    }
                    dt { "Customer" } dd { (e.customer) }
                    dt { "Seen" } dd { (when(&e.first_seen)) @if e.last_seen != e.first_seen { ", last " (when(&e.last_seen)) } }
                    dt { "Attempts" } dd { (e.attempts) " deliveries · " (e.occurrences) " dead letters · " (e.replays) " replays" }
                    dt { "Assignee" } dd { (e.assignee.as_deref().unwrap_or("nobody")) }
                    @if !e.tags.is_empty() { dt { "Tags" } dd { (e.tags.join(", ")) } }
                    dt { "Replay guard" } dd.small { (v.replay_guard) }
                }
            }
            section aria-labelledby="fix-h" {
                h2 #fix-h { "Suggestions" }
                @if e.suggestions.is_empty() {
                    p.muted { "None: read the error, then replay, edit or discard." }
                }
                ol.suggestions {
                    @for (i, s) in e.suggestions.iter().enumerate() {
                        li {
                            p {
                                strong { (s.field) } ": "
                                @if !s.current_value.is_empty() { code { (s.current_value) } " → " }
                                code { (s.suggested_value) }
                                span.muted { " · score " (format!("{:.2}", s.score)) }
                            }
                            p.small { (s.reason) }
                            @if s.rule.is_empty() {
                                p.muted.small { "Not a mapping rule: a person acts elsewhere, then replays." }
                            } @else {
                                details { summary { "The rule it writes" } pre { code { (s.rule) } } }
                                @if act {
                                    form method="post" action={ "/ui/issues/" (e.issue) "/fix" } {
                                        (csrf(&session))
                                        input type="hidden" name="suggestion" value=(i);
                                        input type="hidden" name="entry" value=(e.id);
                                        button.primary type="submit" data-busy="Applying…" { "Apply suggestion and replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if session.may_act() {
            (actions(&session, &v, act))
        }
        section aria-labelledby="payload-h" {
            h2 #payload-h { "Payload" @if session.caller.masked() { span.muted.small { " (customer data masked)" } } }
            p.muted.small { (e.subject) " · " (e.payload_size) " bytes"
                @if e.original_sequence > 0 { " · " (e.original_stream) " sequence " (e.original_sequence) }
                @if e.payload_truncated { " · cut at the size cap in this copy" } }
            pre.payload { code { (pretty(v.payload.as_ref())) } }
            @if let Some(edited) = &v.edited_payload {
                h3 { "Edited payload (sent by the next replay)" }
                pre.payload { code { (pretty(Some(edited))) } }
            }
        }
        section aria-labelledby="audit-h" {
            h2 #audit-h { "Audit trail" }
            ol.audit {
                @for a in &e.audit {
                    li { time datetime=(a.at) { (when(&a.at)) } " · " strong { (a.who) } " · " (a.action) ": " (a.detail) }
                }
            }
            @if !e.notes.is_empty() {
                h3 { "Notes" }
                ul { @for n in &e.notes { li { (when(&n.at)) " · " (n.who) ": " (n.text) } } }
            }
        }
    };
    let had = notice.is_some();
    shown(
        StatusCode::OK,
        layout::page(&title, &session, notice.as_deref(), body),
        had,
    )
}

fn pretty(v: Option<&serde_json::Value>) -> String {
    v.map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
        .unwrap_or_else(|| "(not kept, or not readable)".to_owned())
}

/// The live line: what the entry is doing now. The script follows it while `watch` is set.
fn live(v: &EntryView, watch: bool) -> Markup {
    let (state, text) = progress(v.entry.status, v.entry.audit.last());
    html! {
        div #live.live data-entry=(v.entry.id) data-watch=[watch.then_some("1")] data-state=(state) role="status" aria-live="polite" {
            span.dot {} span.text { (text) }
        }
    }
}

/// Where an entry stands in words, from its status and its last audit line: `replayed`, then
/// `written` with the invoice number once the write's fact resolved it.
fn progress(status: Status, last: Option<&crate::entry::AuditEvent>) -> (&'static str, String) {
    let detail = last.map(|a| a.detail.clone()).unwrap_or_default();
    match status {
        Status::Resolved => ("done", format!("Resolved: {detail}")),
        Status::Replayed => ("busy", format!("Replayed; waiting for the write: {detail}")),
        Status::Discarded => ("closed", format!("Discarded: {detail}")),
        Status::Ignored => ("closed", format!("Ignored: {detail}")),
        Status::Open | Status::Acknowledged => match last.map(|a| a.action.as_str()) {
            Some("failed_again") => ("failed", format!("Failed again: {detail}")),
            _ => ("open", format!("Open: {detail}")),
        },
    }
}

fn actions(session: &Session, v: &EntryView, act: bool) -> Markup {
    let e = &v.entry;
    html! {
        section aria-labelledby="act-h" {
            h2 #act-h { "Act" }
            @if !act {
                p.muted { "This entry is " (e.status.as_str()) ": nothing to replay." }
            }
            div.actions {
                @if act {
                    form method="post" action={ "/ui/entries/" (e.id) "/replay" } {
                        (csrf(session))
                        button type="submit" data-busy="Replaying…" { "Replay" }
                    }
                }
                form.inline-fields method="post" action={ "/ui/entries/" (e.id) "/assign" } {
                    (csrf(session))
                    label for="assignee" { "Assign to" }
                    input #assignee type="text" name="assignee" maxlength="200" value=[e.assignee.as_deref()];
                    button type="submit" { "Assign" }
                }
                @if act || e.status == Status::Ignored {
                    form.inline-fields method="post" action={ "/ui/entries/" (e.id) "/discard" } {
                        (csrf(session))
                        label for="discard-reason" { "Discard, because" }
                        input #discard-reason type="text" name="reason" required maxlength="500" placeholder="a test order";
                        button.danger type="submit" { "Discard" }
                    }
                }
            }
            @if act && e.stage != "normalizer" {
                details.edit {
                    summary { "Edit the payload, then replay" }
                    form method="post" action={ "/ui/entries/" (e.id) "/edit" } {
                        (csrf(session))
                        label for="payload" { "Payload (JSON; the original is kept)" }
                        textarea #payload name="payload" rows="18" spellcheck="false" {
                            (pretty(v.edited_payload.as_ref().or(v.payload.as_ref())))
                        }
                        button type="submit" data-busy="Replaying…" { "Save and replay" }
                    }
                }
            } @else if act {
                p.muted.small { "A normalizer-stage entry replays its webhook as the store sent it (RAW is the store's record): fix the mapping, or the order in the store and resync." }
            }
        }
    }
}

/// The live line's data, for the script.
#[derive(Debug, Serialize)]
pub struct Live {
    status: Status,
    state: &'static str,
    text: String,
}

/// `GET /ui/entries/{id}/status`: where the entry stands now (JSON, for the live line).
pub(super) async fn status(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let Some(v) = load(&state, &session, &id).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (s, text) = progress(v.entry.status, v.entry.audit.last());
    let mut r = Json(Live {
        status: v.entry.status,
        state: s,
        text,
    })
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

fn refused(e: &ActionError) -> String {
    format!("Not done: {e}")
}

fn watch(id: &str) -> String {
    format!("/ui/entries/{id}?watch=1")
}

#[derive(Deserialize)]
pub(super) struct Empty {}

/// `POST /ui/entries/{id}/replay`.
pub(super) async fn replay(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Response {
    let Some(_) = operator_sees(&state, &session, &id) else {
        return not_found(&session);
    };
    match state
        .app
        .actions
        .replay(&id, &session.caller.name, None, 0)
        .await
    {
        Ok(r) => done(
            &watch(&id),
            &format!("Replay {}: {} ({}).", r.replay, r.detail, r.guard),
        ),
        Err(e) => done(&format!("/ui/entries/{id}"), &refused(&e)),
    }
}

/// The entry, if the caller is an operator who may see it.
fn operator_sees(state: &UiState, session: &Session, id: &str) -> Option<()> {
    session.caller.operator().ok()?;
    state
        .app
        .actions
        .store()
        .get(id)
        .filter(|v| session.caller.sees(&v.entry.store))
        .map(|_| ())
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    payload: String,
}

/// `POST /ui/entries/{id}/edit`: keep the edit beside the original, then replay it.
pub(super) async fn edit(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<EditForm>,
) -> Response {
    let Some(()) = operator_sees(&state, &session, &id) else {
        return not_found(&session);
    };
    let actions = &state.app.actions;
    let schema = match actions.store().load(&id).await {
        Ok(Some(v)) => v.entry.schema().to_owned(),
        _ => return not_found(&session),
    };
    let bytes = match crate::decode::encode(&schema, &f.payload) {
        Ok(b) => b,
        Err(e) => {
            return done(
                &format!("/ui/entries/{id}"),
                &format!("Not saved: the payload is {e}"),
            );
        }
    };
    let who = &session.caller.name;
    if let Err(e) = actions.edit(&id, who, None, bytes.into()).await {
        return done(&format!("/ui/entries/{id}"), &refused(&e));
    }
    match actions.replay(&id, who, None, 0).await {
        Ok(r) => done(
            &watch(&id),
            &format!("Edited; replay {}: {}.", r.replay, r.detail),
        ),
        Err(e) => done(
            &format!("/ui/entries/{id}"),
            &format!("Edited, but {}", refused(&e)),
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct ReasonForm {
    reason: String,
}

/// `POST /ui/entries/{id}/discard`.
pub(super) async fn discard(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let Some(()) = operator_sees(&state, &session, &id) else {
        return not_found(&session);
    };
    let to = format!("/ui/entries/{id}");
    match state
        .app
        .actions
        .close(
            &id,
            &session.caller.name,
            None,
            Status::Discarded,
            &f.reason,
        )
        .await
    {
        Ok(_) => done(&to, "Discarded."),
        Err(e) => done(&to, &refused(&e)),
    }
}

#[derive(Deserialize)]
pub(super) struct AssignForm {
    #[serde(default)]
    assignee: String,
}

/// `POST /ui/entries/{id}/assign`.
pub(super) async fn assign(
    State(state): State<UiState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    let Some(()) = operator_sees(&state, &session, &id) else {
        return not_found(&session);
    };
    let to = format!("/ui/entries/{id}");
    match state
        .app
        .actions
        .assign(&id, &session.caller.name, None, &f.assignee)
        .await
    {
        Ok(_) if f.assignee.trim().is_empty() => done(&to, "Unassigned."),
        Ok(_) => done(&to, &format!("Assigned to {}.", f.assignee.trim())),
        Err(e) => done(&to, &refused(&e)),
    }
}

#[derive(Deserialize)]
pub(super) struct FixForm {
    suggestion: usize,
    /// The entry the person was on (they come back to it).
    entry: String,
}

/// `POST /ui/issues/{id}/fix`: apply a suggestion's rule, then replay the issue's open
/// entries; back to the entry, followed live.
pub(super) async fn fix(
    State(state): State<UiState>,
    session: Session,
    Path(issue): Path<String>,
    Form(f): Form<FixForm>,
) -> Response {
    let back = format!("/ui/entries/{}", f.entry);
    if session.caller.operator().is_err() {
        return done(&back, "Viewers cannot apply fixes.");
    }
    let req = FixRequest {
        suggestion: Some(f.suggestion),
        rule: None,
        no_replay: false,
    };
    let caller = session.caller.clone();
    match state
        .app
        .actions
        .fix(&issue, &req, &session.caller.name, move |e| {
            caller.sees(&e.store)
        })
        .await
    {
        Ok(r) => {
            let replayed = r.replays.len();
            done(
                &watch(&f.entry),
                &format!(
                    "Rule applied (overlay {} revision {}); {replayed} {} of the issue replayed.",
                    r.overlay_key,
                    r.overlay_revision,
                    if replayed == 1 { "entry" } else { "entries" }
                ),
            )
        }
        Err(e) => done(&back, &refused(&e)),
    }
}
