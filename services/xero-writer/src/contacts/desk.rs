//! One contact desk per tenant: the order path and the customer path both bring it the customers
//! the cache does not know, and it resolves them in shared rounds, one at a time. What arrives
//! while a round is out (waiting for Xero, or for the budget) goes into the next round together,
//! so a customer event and the customer's first order cost one search and one creation between
//! them, and the scarcer the budget, the fuller the rounds.

use super::round::{Miss, Outcome, Round};
use super::{ContactSpec, Origin, Resolved, cache_key, cached_id, claim, read_all};
use crate::terms::KnownTerms;
use async_nats::jetstream::kv;
use ledgerline_platform::telemetry::{self, Links};
use ledgerline_xero_client::Client;
use ledgerline_xero_client::budget::{Lane, current_lane};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Which path asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The order path: the contact an order posts to.
    Orders,
    /// The customer path: the customer's own record.
    Customers,
}

struct Request {
    misses: Vec<Miss>,
    links: Links,
    reply: oneshot::Sender<HashMap<String, Outcome>>,
}

/// A tenant's contact desk (cheap to clone).
#[derive(Debug, Clone)]
pub struct Desk {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Arc<Client>,
    cache: kv::Store,
    batch: usize,
    terms: KnownTerms,
    tx: mpsc::Sender<Request>,
}

impl Desk {
    /// The desk for `client`'s tenant; its rounds run on a task that ends with the last clone.
    pub fn start(
        client: Arc<Client>,
        cache: kv::Store,
        batch: usize,
        max_linger: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let terms = KnownTerms::default();
        let round = Round {
            client: client.clone(),
            cache: cache.clone(),
            batch,
            terms: terms.clone(),
        };
        tokio::spawn(serve(round, max_linger, rx));
        Self {
            inner: Arc::new(Inner {
                client,
                cache,
                batch,
                terms,
                tx,
            }),
        }
    }

    /// The tenant's known contact terms: those of contacts the desk created are filled in.
    pub fn terms(&self) -> &KnownTerms {
        &self.inner.terms
    }

    /// Resolves `specs` to ContactIDs: the cache first (no call), the rest in the desk's next
    /// round. Calls made in a background lane (backfill) are not mixed into the live rounds:
    /// they resolve in the caller's task, in its lane.
    pub async fn resolve(
        &self,
        path: Path,
        store_of: &HashMap<String, String>,
        specs: Vec<ContactSpec>,
    ) -> HashMap<String, Resolved> {
        let tenant = self.inner.client.tenant();
        let mut unique: Vec<ContactSpec> = Vec::new();
        for s in specs {
            if !unique.iter().any(|u| u.contact_number == s.contact_number) {
                unique.push(s);
            }
        }
        let misses: Vec<Miss> = unique
            .into_iter()
            .map(|spec| {
                let store = store_of
                    .get(&spec.contact_number)
                    .map_or("", String::as_str);
                Miss {
                    key: cache_key(tenant, store, &spec.identity),
                    spec,
                    own_record: path == Path::Customers,
                }
            })
            .collect();
        let cache = &self.inner.cache;
        let hits = read_all(cache, misses.iter().map(|m| m.key.clone()).collect()).await;
        let mut out = HashMap::new();
        let mut unknown = Vec::new();
        for (m, hit) in misses.into_iter().zip(hits) {
            match hit {
                Ok(Some(v)) if !v.is_empty() => {
                    out.insert(
                        m.spec.contact_number.clone(),
                        Resolved::Id(cached_id(&v), Origin::Cached),
                    );
                }
                _ => unknown.push(m),
            }
        }
        if unknown.is_empty() {
            return out;
        }
        let numbers: Vec<String> = unknown
            .iter()
            .map(|m| m.spec.contact_number.clone())
            .collect();
        let outcomes = if current_lane() == Lane::Live {
            self.ask(unknown).await
        } else {
            let i = &self.inner;
            Round {
                client: i.client.clone(),
                cache: i.cache.clone(),
                batch: i.batch,
                terms: i.terms.clone(),
            }
            .run(unknown)
            .await
        };
        let waits = numbers.into_iter().map(|number| {
            let outcome = outcomes.get(&number).cloned();
            async move {
                let r = match outcome {
                    Some(Outcome::Done(r)) => r,
                    Some(Outcome::Wait(key)) => claim::wait_for(cache, &key).await,
                    None => Resolved::Transient("contact not resolved".into()),
                };
                (number, r)
            }
        });
        out.extend(futures::future::join_all(waits).await);
        out
    }

    async fn ask(&self, misses: Vec<Miss>) -> HashMap<String, Outcome> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            misses,
            links: telemetry::current_links(),
            reply,
        };
        if self.inner.tx.send(request).await.is_err() {
            return HashMap::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// How long a round waits for other requests while the budget is on pace. Short: on pace,
/// latency matters more than calls, and what arrives while a round is out joins the next one
/// anyway (at 30 ms, a pull's linger, new customers' invoices took 40 ms longer at p50).
const GATHER: Duration = Duration::from_millis(5);

/// The desk's loop: a round for everything that has arrived, one round at a time.
async fn serve(round: Round, max_linger: Duration, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        // A moment for the other path's request to join (a customer event and its first order
        // arrive together); off pace, until the budget's windows have renewed, as the workers
        // linger before a pull.
        let gather = round
            .client
            .budget
            .pace_wait()
            .map_or(GATHER, |wait| wait.clamp(GATHER, max_linger.max(GATHER)));
        tokio::time::sleep(gather).await;
        let mut requests = vec![first];
        while let Ok(r) = rx.try_recv() {
            requests.push(r);
        }
        let (misses, chosen, links) = merge(&requests);
        tracing::debug!(
            requests = requests.len(),
            misses = misses.len(),
            "Contact round."
        );
        metrics::histogram!(crate::metrics_names::CONTACT_ROUND_SIZE).record(misses.len() as f64);
        let outcomes = telemetry::with_links(links, round.run(misses)).await;
        for (n, r) in requests.into_iter().enumerate() {
            let mine = r
                .misses
                .iter()
                .filter_map(|m| {
                    let number = &m.spec.contact_number;
                    let outcome = match outcomes.get(number)? {
                        // Created from another request's details: for this one it existed.
                        Outcome::Done(Resolved::Id(id, Origin::Created))
                            if chosen.get(number) != Some(&n) =>
                        {
                            Outcome::Done(Resolved::Id(id.clone(), Origin::Found))
                        }
                        o => o.clone(),
                    };
                    Some((number.clone(), outcome))
                })
                .collect();
            let _ = r.reply.send(mine);
        }
    }
}

/// The round's misses, one per ContactNumber: the customer's own record where a request brings
/// it (its details are the account's), else the first asked. Also which request each came from,
/// and the traces of every request.
fn merge(requests: &[Request]) -> (Vec<Miss>, HashMap<String, usize>, Links) {
    let mut chosen: HashMap<String, usize> = HashMap::new();
    let mut misses: Vec<Miss> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (n, r) in requests.iter().enumerate() {
        for m in &r.misses {
            let number = &m.spec.contact_number;
            match at.get(number) {
                None => {
                    at.insert(number.clone(), misses.len());
                    chosen.insert(number.clone(), n);
                    misses.push(m.clone());
                }
                Some(&i) if m.own_record && !misses[i].own_record => {
                    misses[i] = m.clone();
                    chosen.insert(number.clone(), n);
                }
                Some(_) => {}
            }
        }
    }
    let links = Links::merge(requests.iter().map(|r| &r.links));
    (misses, chosen, links)
}
