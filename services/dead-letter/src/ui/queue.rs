//! The review queue: issues with their counts and oldest age, the entries a filter covers, and
//! bulk replay, discard or assign of the entries a person selects.

use super::layout::{self, age, csrf};
use super::{Form, Session, UiState, done, notice, shown};
use crate::entry::Status;
use crate::filter::Filter;
use crate::views::{EntrySummary, issues_of, matching, sort};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Entries on one page of the queue.
const PAGE: usize = 50;
/// At most this many entries are acted on by one bulk submit.
const BULK_MAX: usize = 200;

/// The queue's query: the filter as a form sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct QueueQuery {
    store: Option<String>,
    stage: Option<String>,
    reason: Option<String>,
    /// `open` (the default: open and acknowledged), a status, or `any`.
    status: Option<String>,
    issue: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field, read as UTC) or RFC 3339.
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    offset: Option<usize>,
}

impl QueueQuery {
    fn filter(&self) -> Result<Filter, String> {
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") | Some("open") => Some(Status::Open),
            Some("any") => None,
            Some(s) => Some(s.parse::<Status>()?),
        };
        let time = |t: &Option<String>| {
            t.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    if t.len() == 16 {
                        format!("{t}:00Z")
                    } else {
                        t.to_owned()
                    }
                })
        };
        Filter {
            store: self.store.clone(),
            stage: self.stage.clone(),
            reason: self.reason.clone(),
            fault: None,
            status,
            issue: self.issue.clone(),
            from: time(&self.from),
            to: time(&self.to),
            q: self.q.clone(),
        }
        .normalized()
    }

    /// The query string that reproduces this view (without the page offset).
    fn query_string(&self) -> String {
        let pairs = [
            ("store", &self.store),
            ("stage", &self.stage),
            ("reason", &self.reason),
            ("status", &self.status),
            ("issue", &self.issue),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ];
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }
}

/// `GET /ui`: the queue.
pub(super) async fn page(
    State(state): State<UiState>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Response {
    let started = std::time::Instant::now();
    let notice = notice(&headers);
    let caller = &session.caller;
    let store = state.app.actions.store();
    let (filter, error) = match q.filter() {
        Ok(f) => (f, None),
        Err(e) => (
            Filter {
                status: Some(Status::Open),
                ..Default::default()
            },
            Some(e),
        ),
    };
    // Issues follow the filter but not an issue choice, so the others stay in view.
    let issue_filter = Filter {
        issue: None,
        ..filter.clone()
    };
    let issues = issues_of(
        store,
        caller,
        &issue_filter,
        filter.status == Some(Status::Open),
    );
    let mut entries = matching(store, &filter, caller);
    sort(&mut entries, None, None);
    let total = entries.len();
    let offset = q.offset.unwrap_or(0).min(total);
    let shown_entries: Vec<EntrySummary> = entries
        .iter()
        .skip(offset)
        .take(PAGE)
        .map(|e| EntrySummary::of(e, caller))
        .collect();
    // The choices the filter offers: what the caller can see.
    let (mut stores, mut stages, mut reasons) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let open_total = store.scan(|it| {
        let mut open = 0;
        for v in it.filter(|v| caller.sees(&v.entry.store)) {
            stores.insert(v.entry.store.clone());
            stages.insert(v.entry.stage.clone());
            reasons.insert(v.entry.reason.clone());
            open += usize::from(v.entry.status.is_open());
        }
        open
    });
    let qs = q.query_string();
    let body = html! {
        p.summary {
            strong { (layout::count(open_total)) } " open entries in " strong { (layout::count(issues.iter().filter(|i| i.open > 0).count())) } " issues"
            @if !caller.stores.is_empty() { " (your stores)" }
            "."
        }
        @if let Some(e) = &error { p.error role="alert" { "The filter could not be used: " (e) } }
        (filters(&q, &stores, &stages, &reasons))
        section aria-labelledby="issues-h" {
            h2 #issues-h { "Issues" }
            @if issues.is_empty() {
                p.muted { "No issues match." }
            } @else {
                table.issues {
                    thead { tr {
                        th scope="col" { "Issue" } th scope="col" { "Stage" } th scope="col" { "Stores" }
                        th scope="col" class="num" { "Open" } th scope="col" { "Oldest open" }
                        th scope="col" { "Last seen" } th scope="col" { "Best suggestion" }
                    } }
                    tbody {
                        @for i in &issues {
                            tr class=[(q.issue.as_deref() == Some(i.id.as_str())).then_some("chosen")] {
                                td {
                                    a href={ "/ui?status=" (q.status.as_deref().unwrap_or("open")) "&issue=" (i.id) } { (i.key) }
                                    div.muted.small { (i.sample_error) }
                                }
                                td { (i.stage) }
                                td { (i.stores.join(", ")) }
                                td.num { (i.open) }
                                td { (i.oldest_open.as_deref().map(age).unwrap_or_default()) }
                                td { (age(&i.last_seen)) " ago" }
                                td {
                                    @if let Some(s) = i.suggestions.first() {
                                        (s.field) ": " code { (s.suggested_value) }
                                        div.muted.small { (s.reason) }
                                    } @else { span.muted { "none" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="entries-h" {
            h2 #entries-h { "Entries " span.muted { "(" (layout::count(total)) ")" } }
            (entries_table(&session, &shown_entries, &qs, offset, total))
        }
        p.muted.small { "Rendered in " (format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0)) " ms." }
    };
    let had = notice.is_some();
    let mut r = shown(
        StatusCode::OK,
        layout::page("Review queue", &session, notice.as_deref(), body),
        had,
    );
    // The server's own time, for the benchmark and for anyone curious (Server-Timing).
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "render;dur={:.2}",
        started.elapsed().as_secs_f64() * 1000.0
    )) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

fn filters(
    q: &QueueQuery,
    stores: &BTreeSet<String>,
    stages: &BTreeSet<String>,
    reasons: &BTreeSet<String>,
) -> Markup {
    let select = |name: &str,
                  label: &str,
                  all: &str,
                  options: &BTreeSet<String>,
                  chosen: &Option<String>| {
        html! {
            div.field {
                label for=(name) { (label) }
                select #(name) name=(name) {
                    option value="" { (all) }
                    @for o in options {
                        option value=(o) selected[chosen.as_deref() == Some(o.as_str())] { (o) }
                    }
                }
            }
        }
    };
    let statuses: BTreeSet<String> = [
        "any",
        "acknowledged",
        "replayed",
        "resolved",
        "discarded",
        "ignored",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    html! {
        form.filters method="get" action="/ui" role="search" aria-label="Filter the queue" {
            (select("store", "Store", "All stores", stores, &q.store))
            (select("stage", "Stage", "All stages", stages, &q.stage))
            (select("reason", "Reason", "All reasons", reasons, &q.reason))
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="open" { "open" }
                    @for s in &statuses {
                        option value=(s) selected[q.status.as_deref() == Some(s.as_str())] { (s) }
                    }
                }
            }
            div.field {
                label for="from" { "Last seen from (UTC)" }
                input #from type="datetime-local" name="from" value=[q.from.as_deref()];
            }
            div.field {
                label for="to" { "to (UTC)" }
                input #to type="datetime-local" name="to" value=[q.to.as_deref()];
            }
            div.field.grow {
                label for="q" { "Order number or customer" }
                input #q type="search" name="q" value=[q.q.as_deref()] placeholder="SO-1042, name@example.com";
            }
            @if let Some(i) = &q.issue { input type="hidden" name="issue" value=(i); }
            div.field.buttons {
                button type="submit" { "Filter" }
                a href="/ui" { "Clear" }
            }
        }
    }
}

fn entries_table(
    session: &Session,
    entries: &[EntrySummary],
    qs: &str,
    offset: usize,
    total: usize,
) -> Markup {
    let act = session.may_act();
    html! {
        @if entries.is_empty() {
            p.muted { "No entries match." }
        } @else {
            form #bulk method="post" action="/ui/bulk" {
                (csrf(session))
                input type="hidden" name="back" value=(qs);
                table.entries {
                    thead { tr {
                        @if act {
                            th scope="col" { input #select-all type="checkbox" aria-label="Select every entry on this page" data-select-all="ids"; }
                        }
                        th scope="col" { "Order" } th scope="col" { "Customer" } th scope="col" { "Issue" }
                        th scope="col" { "Status" } th scope="col" { "Last seen" } th scope="col" class="num" { "Attempts" }
                        th scope="col" { "Assignee" }
                    } }
                    tbody {
                        @for e in entries {
                            tr {
                                @if act {
                                    td { input type="checkbox" name="ids" value=(e.id) aria-label={ "Select " (label(e)) }; }
                                }
                                td {
                                    a href={ "/ui/entries/" (e.id) } { (label(e)) }
                                    @if let Some((store, id)) = e.entity.split_once('/') {
                                        " " a.small href={ "/ui/orders/" (store) "/" (id) } title="The order's timeline" { "timeline" }
                                    }
                                }
                                td { (e.customer) }
                                td { (e.issue_key) }
                                td { (layout::status(e.status)) }
                                td { (age(&e.last_seen)) " ago" }
                                td.num { (e.attempts) }
                                td { (e.assignee.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                @if act {
                    fieldset.bulk {
                        legend { "With the selected entries" }
                        div.field {
                            label for="action" { "Action" }
                            select #action name="action" {
                                option value="replay" { "Replay" }
                                option value="discard" { "Discard (needs a reason)" }
                                option value="assign" { "Assign" }
                            }
                        }
                        div.field.grow {
                            label for="reason" { "Reason (discard)" }
                            input #reason type="text" name="reason" maxlength="500";
                        }
                        div.field {
                            label for="assignee" { "Assignee (assign)" }
                            input #assignee type="text" name="assignee" maxlength="200";
                        }
                        div.field.buttons { button type="submit" { "Apply to selected" } }
                    }
                }
            }
            nav.pages aria-label="Pages" {
                @if offset > 0 {
                    a href={ "/ui?" (qs) "&offset=" (offset.saturating_sub(PAGE)) } { "Previous page" }
                }
                span.muted { (offset + 1) "–" (offset + entries.len()) " of " (total) }
                @if offset + entries.len() < total {
                    a href={ "/ui?" (qs) "&offset=" (offset + entries.len()) } { "Next page" }
                }
            }
        }
    }
}

/// How a person names an entry: its order number, else its entity, else its id.
fn label(e: &EntrySummary) -> String {
    if !e.order_number.is_empty() {
        e.order_number.clone()
    } else if !e.entity.is_empty() {
        e.entity.clone()
    } else {
        e.id.clone()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    ids: Vec<String>,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    back: String,
}

/// `POST /ui/bulk`: replay, discard or assign the selected entries.
pub(super) async fn bulk(
    State(state): State<UiState>,
    session: Session,
    Form(f): Form<BulkForm>,
) -> Response {
    let back = format!("/ui?{}", f.back);
    if session.caller.operator().is_err() {
        return done(&back, "Viewers cannot act on entries.");
    }
    if f.ids.is_empty() {
        return done(&back, "Select at least one entry.");
    }
    if f.action == "discard" && f.reason.trim().is_empty() {
        return done(&back, "A discard needs a reason: nothing was discarded.");
    }
    let actions = &state.app.actions;
    let who = &session.caller.name;
    let (mut ok, mut failed) = (0usize, Vec::new());
    for id in f.ids.iter().take(BULK_MAX) {
        let visible = actions
            .store()
            .get(id)
            .is_some_and(|v| session.caller.sees(&v.entry.store));
        if !visible {
            failed.push(format!("{id}: not found"));
            continue;
        }
        let result = match f.action.as_str() {
            "replay" => actions.replay(id, who, None, 0).await.map(|_| ()),
            "discard" => actions
                .close(id, who, None, Status::Discarded, &f.reason)
                .await
                .map(|_| ()),
            "assign" => actions.assign(id, who, None, &f.assignee).await.map(|_| ()),
            other => {
                return done(&back, &format!("Unknown action {other:?}."));
            }
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) => failed.push(format!("{}: {e}", short(id))),
        }
    }
    let verb = match f.action.as_str() {
        "replay" => "Replayed",
        "discard" => "Discarded",
        _ => "Assigned",
    };
    let mut text = format!("{verb} {ok} of {} selected.", f.ids.len().min(BULK_MAX));
    if f.ids.len() > BULK_MAX {
        text.push_str(&format!(" Only the first {BULK_MAX} were taken."));
    }
    if !failed.is_empty() {
        text.push_str(&format!(" Not done: {}", failed.join("; ")));
    }
    done(&back, &text)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(14)]
}
