//! The projection in KV (`recon_projection`): `o.<store>.<order>` holds an [`OrderView`]
//! (JSON, updated by compare-and-set), `x.<xero id>` the order a Xero document or payment
//! belongs to (so an observation finds its order), `c.<contact id>` the orders of a contact.
//! Every change is evaluated at once; findings that open are published on RECON and acted on
//! by policy, findings whose drift is gone are closed. Orders whose SLA has not run out yet are
//! looked at again when it does.

use crate::actions::Actions;
use crate::findings::{Draft, Kind, Slas, evaluate};
use crate::report::rows::RowStore;
use crate::view::{OpenFinding, OrderView};
use async_nats::jetstream::kv;
use bytes::Bytes;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::Finding;
use ledgerline_platform::publish::Publisher;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an update did not land.
#[derive(Debug, thiserror::Error)]
#[error("projection: {0}")]
pub struct ProjectionError(String);

/// The projection and what acts on it.
#[derive(Debug, Clone)]
pub struct Projection {
    kv: kv::Store,
    publisher: Publisher,
    actions: Option<Actions>,
    slas: Slas,
    /// Orders to look at again, and when.
    due: Arc<Mutex<BTreeMap<String, chrono::DateTime<chrono::Utc>>>>,
    /// Open findings by order key and kind (for metrics and the API): opened at, summary.
    open: Arc<Mutex<OpenIndex>>,
    /// The report's rows, kept with the views.
    rows: Option<RowStore>,
}

/// Open findings by order key, then kind: (opened at, summary).
type OpenIndex = HashMap<String, BTreeMap<String, (String, String)>>;

/// Marks the view tied out at its store version when it has just come to agree; returns
/// which histogram to record and the seconds from the store's event to now (`order`: the
/// order's first version, from when the store first told us; `change`: a later version,
/// from its change).
fn tie_out(view: &mut OrderView) -> Option<(&'static str, f64)> {
    let s = view.store_side.as_ref()?;
    if view.tied_out_version >= s.version || !view.ties_out() {
        return None;
    }
    let (stage, from) = if view.tied_out_version == 0 {
        ("order", &s.first_seen)
    } else {
        ("change", &s.changed_at)
    };
    let secs = chrono::DateTime::parse_from_rfc3339(from)
        .map(|t| (now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0)
        .max(0.0);
    view.tied_out_version = s.version;
    Some((stage, secs))
}

/// A view's KV key.
pub fn view_key(store: &str, order_id: &str) -> String {
    format!("o.{}.{}", subjects::token(store), subjects::token(order_id))
}

fn link_key(xero_id: &str) -> String {
    format!("x.{}", subjects::token(xero_id))
}

fn contact_key(contact_id: &str) -> String {
    format!("c.{}", subjects::token(contact_id))
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Projection {
    /// The projection in `kv`; with `actions`, findings are published and acted on (none: a
    /// rebuild, which only recomputes the views).
    pub fn new(kv: kv::Store, publisher: Publisher, actions: Option<Actions>, slas: Slas) -> Self {
        Self {
            kv,
            publisher,
            actions,
            slas,
            due: Default::default(),
            open: Default::default(),
            rows: None,
        }
    }

    /// Keeps the report's rows in `rows` as views change.
    pub fn with_rows(mut self, rows: RowStore) -> Self {
        self.rows = Some(rows);
        self
    }

    /// The report's rows, when kept.
    pub fn rows(&self) -> Option<&RowStore> {
        self.rows.as_ref()
    }

    /// The bucket.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// The view of `store`'s order `order_id`, and its revision (0: none yet).
    pub async fn load(
        &self,
        store: &str,
        order_id: &str,
    ) -> Result<(OrderView, u64), ProjectionError> {
        match self.kv.entry(view_key(store, order_id)).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => serde_json::from_slice(&e.value)
                .map(|v| (v, e.revision))
                .map_err(|e| ProjectionError(format!("unreadable view: {e}"))),
            Ok(_) => Ok((OrderView::new(store, order_id), 0)),
            Err(e) => Err(ProjectionError(e.to_string())),
        }
    }

    /// Applies `change` to the order's view (reloading and trying again when another replica
    /// wrote it first), evaluates it, and saves it. `change` says whether anything changed; if
    /// not, nothing is written. `force` evaluates anyway (an SLA ran out).
    pub async fn update(
        &self,
        store: &str,
        order_id: &str,
        force: bool,
        change: impl Fn(&mut OrderView) -> bool,
    ) -> Result<(), ProjectionError> {
        let key = view_key(store, order_id);
        for _ in 0..20 {
            let (mut view, revision) = self.load(store, order_id).await?;
            if !change(&mut view) && !force {
                return Ok(());
            }
            let at = now();
            let (opened, closed) = self.findings(&mut view, at);
            let tied_out = tie_out(&mut view);
            let bytes = Bytes::from(serde_json::to_vec(&view).expect("a view serializes"));
            let saved = if revision == 0 {
                self.kv.create(&key, bytes).await.map_err(|e| e.to_string())
            } else {
                self.kv
                    .update(&key, bytes, revision)
                    .await
                    .map_err(|e| e.to_string())
            };
            match saved {
                Ok(rev) => {
                    if let Some(rows) = &self.rows {
                        rows.queue(&view, rev);
                    }
                    if let (Some(first_seen), true) = (tied_out, self.actions.is_some()) {
                        metrics::histogram!("recon_order_tie_out_seconds", "stage" => first_seen.0)
                            .record(first_seen.1);
                    }
                    self.settled(&key, &view, at);
                    self.announce(&view, &opened, &closed, at).await;
                    return Ok(());
                }
                // Another replica (or event of the order) wrote first: apply to its version.
                Err(e) if e.contains("wrong last sequence") || e.contains("exists") => continue,
                Err(e) => return Err(ProjectionError(e)),
            }
        }
        Err(ProjectionError(format!(
            "{key}: too many concurrent updates"
        )))
    }

    /// Opens and closes the view's findings as evaluated at `at`.
    fn findings(
        &self,
        view: &mut OrderView,
        at: chrono::DateTime<chrono::Utc>,
    ) -> (Vec<Draft>, Vec<(String, OpenFinding)>) {
        let drafts = if self.actions.is_some() {
            evaluate(view, at, self.slas)
        } else {
            vec![]
        };
        let mut opened = Vec::new();
        for d in drafts.iter() {
            let kind = d.kind.as_str().to_owned();
            if let std::collections::btree_map::Entry::Vacant(slot) = view.findings.entry(kind) {
                slot.insert(OpenFinding {
                    opened_at: rfc3339(at),
                    action: String::new(),
                    summary: d.summary.clone(),
                    version: 0,
                });
                opened.push(d.clone());
            }
        }
        let mut closed = Vec::new();
        if self.actions.is_some() {
            let still: Vec<&str> = drafts.iter().map(|d| d.kind.as_str()).collect();
            let seen = view.store_side.as_ref().map_or(0, |s| s.version);
            let gone: Vec<String> = view
                .findings
                .iter()
                // `unseen_order` is opened by the store check, and closed once the pipeline
                // has the version the store has.
                .filter(|(k, f)| {
                    if k.as_str() == Kind::UnseenOrder.as_str() {
                        seen >= f.version
                    } else {
                        !still.contains(&k.as_str())
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                if let Some(f) = view.findings.remove(&k) {
                    closed.push((k, f));
                }
            }
        }
        (opened, closed)
    }

    /// Publishes what opened and closed, acts on what opened, and keeps the open index.
    async fn announce(
        &self,
        view: &OrderView,
        opened: &[Draft],
        closed: &[(String, OpenFinding)],
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(actions) = &self.actions else {
            return;
        };
        let key = view.key();
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let entry = open.entry(key.clone()).or_default();
            for d in opened {
                entry.insert(d.kind.as_str().to_owned(), (rfc3339(at), d.summary.clone()));
            }
            for (k, _) in closed {
                entry.remove(k);
            }
            if entry.is_empty() {
                open.remove(&key);
            }
        }
        for d in opened {
            let policy = actions.policy(d.kind);
            let action = actions.act(view, d).await;
            let f = finding(view, d, true, &rfc3339(at), "", policy.as_str(), &action);
            self.publish(&f).await;
            metrics::counter!("recon_findings_opened_total", "kind" => d.kind.as_str())
                .increment(1);
        }
        for (kind, was) in closed {
            let f = Finding {
                finding_id: format!("{kind}:{key}"),
                kind: kind.clone(),
                store: view.store.clone(),
                order_id: view.order_id.clone(),
                order_number: view.order_number.clone(),
                summary: format!("closed: {}", was.summary),
                open: false,
                opened_at: was.opened_at.clone(),
                closed_at: rfc3339(at),
                tenant_id: view.xero.tenant.clone(),
                ..Default::default()
            };
            self.publish(&f).await;
            metrics::counter!("recon_findings_closed_total", "kind" => kind.clone()).increment(1);
        }
    }

    /// Opens `draft` on an order from outside the view (the store check's `unseen_order`,
    /// wanting the store's `version`), unless it is open already.
    pub async fn raise(
        &self,
        store: &str,
        order_id: &str,
        number: &str,
        draft: &Draft,
        version: u64,
    ) -> Result<(), ProjectionError> {
        let kind = draft.kind.as_str().to_owned();
        let key = view_key(store, order_id);
        for _ in 0..20 {
            let (mut view, revision) = self.load(store, order_id).await?;
            if view.findings.contains_key(&kind)
                || view
                    .store_side
                    .as_ref()
                    .is_some_and(|s| s.version >= version)
            {
                return Ok(());
            }
            if view.order_number.is_empty() {
                view.order_number = number.to_owned();
            }
            let at = now();
            view.findings.insert(
                kind.clone(),
                OpenFinding {
                    opened_at: rfc3339(at),
                    action: String::new(),
                    summary: draft.summary.clone(),
                    version,
                },
            );
            let bytes = Bytes::from(serde_json::to_vec(&view).expect("a view serializes"));
            let saved = if revision == 0 {
                self.kv.create(&key, bytes).await.is_ok()
            } else {
                self.kv.update(&key, bytes, revision).await.is_ok()
            };
            if saved {
                self.announce(&view, std::slice::from_ref(draft), &[], at)
                    .await;
                return Ok(());
            }
        }
        Err(ProjectionError(format!(
            "{key}: too many concurrent updates"
        )))
    }

    /// Publishes a finding event (opened or closed), retried a few times.
    pub async fn publish(&self, f: &Finding) {
        let subject = subjects::recon(&f.store, &f.kind, &f.order_id);
        let id = format!(
            "{}:{}",
            f.finding_id,
            if f.open { &f.opened_at } else { &f.closed_at }
        );
        self.publisher
            .publish_proto_retrying(subject, &id, f, "finding")
            .await;
    }

    /// Keeps the order's next look (its SLA still running), and the tie-out time once it ties.
    fn settled(&self, key: &str, view: &OrderView, at: chrono::DateTime<chrono::Utc>) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        match next_look(view, self.slas, at) {
            Some(t) => {
                due.insert(key.to_owned(), t);
            }
            None => {
                due.remove(key);
            }
        }
    }

    /// Orders whose SLA has run out by now: each is evaluated again.
    pub fn take_due(&self) -> Vec<String> {
        let at = now();
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<String> = due
            .iter()
            .filter(|(_, t)| **t <= at)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            due.remove(k);
        }
        keys
    }

    /// Records that Xero's `xero_id` (a document or payment) belongs to `order_key`
    /// (`<store>/<order id>`).
    pub async fn link(&self, xero_id: &str, order_key: &str) {
        if xero_id.is_empty() || order_key.is_empty() {
            return;
        }
        let k = link_key(xero_id);
        if let Ok(Some(v)) = self.kv.get(&k).await
            && v.as_ref() == order_key.as_bytes()
        {
            return;
        }
        let _ = self
            .kv
            .put(&k, Bytes::copy_from_slice(order_key.as_bytes()))
            .await;
    }

    /// The order (`<store>/<order id>`) `xero_id` belongs to, if known.
    pub async fn order_of(&self, xero_id: &str) -> Option<String> {
        self.kv
            .get(link_key(xero_id))
            .await
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Records that `contact_id` is the contact of `order_key` (the latest 200 orders kept).
    pub async fn link_contact(&self, contact_id: &str, order_key: &str) {
        if contact_id.is_empty() {
            return;
        }
        let k = contact_key(contact_id);
        for _ in 0..5 {
            let (mut keys, rev): (Vec<String>, u64) = match self.kv.entry(&k).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => (
                    serde_json::from_slice(&e.value).unwrap_or_default(),
                    e.revision,
                ),
                _ => (vec![], 0),
            };
            if keys.iter().any(|o| o == order_key) {
                return;
            }
            keys.push(order_key.to_owned());
            if keys.len() > 200 {
                keys.remove(0);
            }
            let bytes = Bytes::from(serde_json::to_vec(&keys).unwrap_or_default());
            let ok = if rev == 0 {
                self.kv.create(&k, bytes).await.is_ok()
            } else {
                self.kv.update(&k, bytes, rev).await.is_ok()
            };
            if ok {
                return;
            }
        }
    }

    /// The orders of `contact_id`.
    pub async fn orders_of_contact(&self, contact_id: &str) -> Vec<String> {
        match self.kv.get(contact_key(contact_id)).await {
            Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or_default(),
            _ => vec![],
        }
    }

    /// Open findings: (order key, kind, opened at, summary).
    pub fn open_findings(&self) -> Vec<(String, String, String, String)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = open
            .iter()
            .flat_map(|(key, kinds)| {
                kinds
                    .iter()
                    .map(|(k, (at, s))| (key.clone(), k.clone(), at.clone(), s.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// Loads every view once at start: the open findings and the orders whose SLA still runs.
    pub async fn load_all(&self) -> Result<usize, ProjectionError> {
        use futures::StreamExt;
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| ProjectionError(e.to_string()))?;
        let mut n = 0;
        let at = now();
        while let Some(k) = keys.next().await {
            let Ok(k) = k else { continue };
            if !k.starts_with("o.") {
                continue;
            }
            let Ok(Some(e)) = self.kv.entry(&k).await else {
                continue;
            };
            let Ok(view) = serde_json::from_slice::<OrderView>(&e.value) else {
                continue;
            };
            n += 1;
            // The rows are made again from the views: one lost in a crash comes back.
            if let Some(rows) = &self.rows {
                rows.queue(&view, e.revision);
            }
            self.settled(&k, &view, at);
            if !view.findings.is_empty() {
                let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                open.insert(
                    view.key(),
                    view.findings
                        .iter()
                        .map(|(k, f)| (k.clone(), (f.opened_at.clone(), f.summary.clone())))
                        .collect(),
                );
            }
        }
        Ok(n)
    }

    /// Sets the gauges: open findings by kind, and the oldest one's age.
    pub fn gauges(&self) {
        let open = self.open_findings();
        let at = now();
        for k in Kind::ALL {
            let n = open
                .iter()
                .filter(|(_, kind, ..)| kind == k.as_str())
                .count();
            metrics::gauge!("recon_open_findings", "kind" => k.as_str()).set(n as f64);
        }
        let oldest = open
            .iter()
            .filter_map(|(_, _, t, _)| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| at.signed_duration_since(t).num_seconds().max(0))
            .max()
            .unwrap_or(0);
        metrics::gauge!("recon_oldest_open_finding_age_seconds").set(oldest as f64);
    }
}

/// When an order must be looked at again although nothing arrived: when its invoice's or its
/// settlement's SLA runs out, if it has not tied out by then.
fn next_look(
    view: &OrderView,
    slas: Slas,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = view.store_side.as_ref()?;
    let plus = |t: &str, d: Duration| {
        chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| {
            t.with_timezone(&chrono::Utc) + chrono::Duration::from_std(d).unwrap_or_default()
        })
    };
    let t = if view.xero.invoices.is_empty() {
        plus(&s.first_seen, slas.invoice)
    } else {
        plus(&s.changed_at, slas.settle)
    }?;
    // Past it already: evaluated on this change; nothing more to wait for.
    (t > at).then_some(t)
}

/// A finding event from a draft.
pub fn finding(
    view: &OrderView,
    d: &Draft,
    open: bool,
    opened_at: &str,
    closed_at: &str,
    policy: &str,
    action: &str,
) -> Finding {
    Finding {
        finding_id: format!("{}:{}", d.kind.as_str(), view.key()),
        kind: d.kind.as_str().to_owned(),
        store: view.store.clone(),
        order_id: view.order_id.clone(),
        order_number: view.order_number.clone(),
        severity: d.kind.severity() as i32,
        summary: d.summary.clone(),
        store_side: d.store_side.clone(),
        xero_side: d.xero_side.clone(),
        suggested_action: d.suggested_action.clone(),
        open,
        opened_at: opened_at.to_owned(),
        closed_at: closed_at.to_owned(),
        policy: policy.to_owned(),
        action_taken: action.to_owned(),
        tenant_id: view.xero.tenant.clone(),
    }
}
