//! What the API and the page show: entry summaries and views, issues, and the queries behind
//! them, computed once for both from the index and KV.

use crate::auth::Caller;
use crate::decode;
use crate::entry::{Entry, FaultView, Status, SuggestionView, Summary};
use crate::filter::Filter;
use crate::store::{Store, Versioned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// One entry in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntrySummary {
    /// Id.
    pub id: String,
    /// Issue id.
    pub issue: String,
    /// Issue key.
    pub issue_key: String,
    /// Stage.
    pub stage: String,
    /// Reason class.
    pub reason: String,
    /// What is at fault.
    pub fault: FaultView,
    /// Error text.
    pub error: String,
    /// Store.
    pub store: String,
    /// `<store>/<order id>`.
    pub entity: String,
    /// Order number.
    pub order_number: String,
    /// Customer (masked for viewers).
    pub customer: String,
    /// Status.
    pub status: Status,
    /// Attempts.
    pub attempts: u32,
    /// Dead letters folded in.
    pub occurrences: u32,
    /// Replays so far.
    pub replays: u32,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
    /// Assignee.
    pub assignee: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The best suggestion, if any.
    pub top_suggestion: Option<SuggestionView>,
}

impl EntrySummary {
    /// The summary as `caller` may see it.
    pub fn of(e: &Summary, caller: &Caller) -> Self {
        Self {
            id: e.id.clone(),
            issue: e.issue.clone(),
            issue_key: e.issue_key.clone(),
            stage: e.stage.clone(),
            reason: e.reason.clone(),
            fault: e.fault.clone(),
            error: e.error.clone(),
            store: e.store.clone(),
            entity: e.entity.clone(),
            order_number: e.order_number.clone(),
            customer: masked(&e.customer, caller),
            status: e.status,
            attempts: e.attempts,
            occurrences: e.occurrences,
            replays: e.replays,
            first_seen: e.first_seen.clone(),
            last_seen: e.last_seen.clone(),
            assignee: e.assignee.clone(),
            tags: e.tags.clone(),
            top_suggestion: e.suggestions.first().cloned(),
        }
    }
}

/// `s`, masked for viewers.
pub fn masked(s: &str, caller: &Caller) -> String {
    if caller.masked() {
        decode::mask_text(s)
    } else {
        s.to_owned()
    }
}

/// A page of entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPage {
    /// Entries matching, in all.
    pub total: usize,
    /// This page.
    pub entries: Vec<EntrySummary>,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

/// One entry in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// The entry (customer masked for viewers).
    #[serde(flatten)]
    pub entry: Entry,
    /// Its revision (also the ETag).
    pub revision: u64,
    /// The payload decoded: protobuf by schema, JSON as is; masked for viewers.
    pub payload: Option<serde_json::Value>,
    /// The operator's edited payload, decoded, if any.
    pub edited_payload: Option<serde_json::Value>,
    /// What would keep a replay exactly-once now.
    pub replay_guard: String,
}

/// The whole entry as `caller` may see it: payloads decoded (and masked for viewers).
pub async fn entry_view(store: &Store, v: Versioned, caller: &Caller) -> EntryView {
    let schema = v.entry.schema().to_owned();
    let read = |p: Option<bytes::Bytes>| {
        p.and_then(|p| decode::view(&schema, &p)).map(|mut j| {
            if caller.masked() {
                decode::mask(&mut j);
            }
            j
        })
    };
    let payload = read(store.payload(&v.entry.id, false).await.ok().flatten());
    let edited_payload = if v.entry.edited {
        read(store.payload(&v.entry.id, true).await.ok().flatten())
    } else {
        None
    };
    let mut entry = v.entry;
    entry.customer = masked(&entry.customer, caller);
    let replay_guard = crate::actions::guard_of(&entry.stage, &entry.first_seen, &entry.entity);
    EntryView {
        entry,
        revision: v.revision,
        payload,
        edited_payload,
        replay_guard,
    }
}

/// The summaries `filter` covers that `caller` may see.
pub fn matching(store: &Store, filter: &Filter, caller: &Caller) -> Vec<Arc<Summary>> {
    store.scan(|it| {
        it.filter(|v| filter.matches(&v.entry, caller))
            .map(|v| v.entry.clone())
            .collect()
    })
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// The last time the stage gave up (default).
    #[default]
    LastSeen,
    /// The first time.
    FirstSeen,
    /// Deliveries before giving up.
    Attempts,
    /// Dead letters folded in.
    Occurrences,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Newest or largest first (default).
    #[default]
    Desc,
    /// Oldest or smallest first.
    Asc,
}

/// Sorts a list (by last seen, newest first, unless told otherwise).
pub fn sort(entries: &mut [Arc<Summary>], by: Option<SortBy>, order: Option<SortOrder>) {
    // Ties break on the id, so pages are stable.
    match by.unwrap_or_default() {
        SortBy::LastSeen => {
            entries.sort_by(|a, b| (&a.last_seen, &a.id).cmp(&(&b.last_seen, &b.id)))
        }
        SortBy::FirstSeen => {
            entries.sort_by(|a, b| (&a.first_seen, &a.id).cmp(&(&b.first_seen, &b.id)))
        }
        SortBy::Attempts => entries.sort_by(|a, b| (a.attempts, &a.id).cmp(&(b.attempts, &b.id))),
        SortBy::Occurrences => {
            entries.sort_by(|a, b| (a.occurrences, &a.id).cmp(&(b.occurrences, &b.id)))
        }
    }
    if matches!(order.unwrap_or_default(), SortOrder::Desc) {
        entries.reverse();
    }
}

/// One issue: entries grouped by stage + fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueView {
    /// `iss-...`.
    pub id: String,
    /// stage/code/field/value.
    pub key: String,
    /// Stage.
    pub stage: String,
    /// Reason class.
    pub reason: String,
    /// What is at fault.
    pub fault: FaultView,
    /// Stores it appears in.
    pub stores: Vec<String>,
    /// Open entries (open or acknowledged).
    pub open: usize,
    /// Entries in all, by status.
    pub statuses: BTreeMap<String, usize>,
    /// First seen of the oldest open entry.
    pub oldest_open: Option<String>,
    /// Its age in seconds.
    pub oldest_open_age_seconds: Option<i64>,
    /// Last seen of any entry.
    pub last_seen: String,
    /// An error text of it.
    pub sample_error: String,
    /// An entry of it.
    pub sample_entry: String,
    /// The suggestions of its latest entry.
    pub suggestions: Vec<SuggestionView>,
}

/// The issues of the entries `filter` covers that `caller` may see, the most open first;
/// with `only_open`, those with open entries.
pub fn issues_of(
    store: &Store,
    caller: &Caller,
    filter: &Filter,
    only_open: bool,
) -> Vec<IssueView> {
    let mut by: BTreeMap<String, IssueView> = BTreeMap::new();
    let now = chrono::Utc::now();
    store.scan(|it| {
        for v in it {
            let e = &v.entry;
            if !filter.matches(e, caller) {
                continue;
            }
            let i = by.entry(e.issue.clone()).or_insert_with(|| IssueView {
                id: e.issue.clone(),
                key: e.issue_key.clone(),
                stage: e.stage.clone(),
                reason: e.reason.clone(),
                fault: e.fault.clone(),
                stores: vec![],
                open: 0,
                statuses: BTreeMap::new(),
                oldest_open: None,
                oldest_open_age_seconds: None,
                last_seen: String::new(),
                sample_error: e.error.clone(),
                sample_entry: e.id.clone(),
                suggestions: vec![],
            });
            if !i.stores.contains(&e.store) {
                i.stores.push(e.store.clone());
            }
            *i.statuses.entry(e.status.as_str().to_owned()).or_insert(0) += 1;
            if e.status.is_open() {
                i.open += 1;
                if i.oldest_open.as_ref().is_none_or(|o| e.first_seen < *o) {
                    i.oldest_open = Some(e.first_seen.clone());
                }
            }
            if e.last_seen > i.last_seen {
                i.last_seen = e.last_seen.clone();
                i.sample_error = e.error.clone();
                i.sample_entry = e.id.clone();
                i.suggestions = e.suggestions.clone();
            }
        }
    });
    let mut out: Vec<IssueView> = by
        .into_values()
        .filter(|i| !only_open || i.open > 0)
        .map(|mut i| {
            i.stores.sort();
            i.oldest_open_age_seconds = i.oldest_open.as_deref().and_then(|o| {
                chrono::DateTime::parse_from_rfc3339(o)
                    .ok()
                    .map(|t| now.signed_duration_since(t).num_seconds())
            });
            i
        })
        .collect();
    out.sort_by(|a, b| b.open.cmp(&a.open).then(a.key.cmp(&b.key)));
    out
}
