//! One batched write: items of many orders sent in requests of at most the batch size, with
//! Xero's per-element answers handed back beside the items they answer.

use crate::worker::TenantWorker;
use crate::worker::work::OrderWork;
use async_nats::jetstream::Message;
use ledgerline_xero_client::model::send;
use ledgerline_xero_client::{Response, XeroError};
use reqwest::Method;

/// Where a batched write goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// `PUT` creates, `POST` updates (for `/Invoices`: updates and voids too).
    pub(crate) method: &'a Method,
    /// The resource, e.g. `/Invoices`.
    pub(crate) path: &'a str,
    /// The envelope's key, e.g. `Invoices`.
    pub(crate) collection: &'a str,
    /// `unitdp=4`: unit amounts with four decimal places.
    pub(crate) unitdp4: bool,
}

impl<'a> Request<'a> {
    /// A write of `collection` to `path` (unit amounts to two decimal places).
    pub(crate) fn new(method: &'a Method, path: &'a str, collection: &'a str) -> Self {
        Self {
            method,
            path,
            collection,
            unitdp4: false,
        }
    }

    /// With `unitdp=4` when `yes`.
    pub(crate) fn unitdp4(self, yes: bool) -> Self {
        Self {
            unitdp4: yes,
            ..self
        }
    }
}

/// How invoices are looked up: by `IDs` or by `InvoiceNumbers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoicesBy {
    /// InvoiceID.
    Id,
    /// InvoiceNumber.
    Number,
}

/// What a request that fails as a whole means for the orders in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFail {
    /// A 400 for the whole request goes to review; anything else is tried again.
    Review,
    /// Always tried again.
    Retry,
}

impl TenantWorker {
    /// One request: `{"<collection>": [...]}` to `path` with `summarizeErrors=false` (and
    /// `unitdp=4` when asked); Xero answers per element, in order.
    pub(crate) async fn batch_call<T: serde::Serialize>(
        &self,
        method: Method,
        path: &str,
        collection: &str,
        docs: &[T],
        unitdp4: bool,
    ) -> Result<Response, XeroError> {
        let mut query = vec![("summarizeErrors", "false".to_owned())];
        if unitdp4 {
            query.push(("unitdp", "4".into()));
        }
        self.client
            .call(method, path, &query, Some(send::envelope(collection, docs)))
            .await
    }

    /// Reads the invoices with these ids or numbers (at most 40: one page).
    pub(crate) async fn read_invoices<S: AsRef<str>>(
        &self,
        by: InvoicesBy,
        keys: &[S],
    ) -> Result<Vec<ledgerline_xero_client::model::Invoice>, XeroError> {
        let param = match by {
            InvoicesBy::Id => "IDs",
            InvoicesBy::Number => "InvoiceNumbers",
        };
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let query = [(param, keys.join(",")), ("page", "1".into())];
        Ok(self
            .client
            .call(Method::GET, "/Invoices", &query, None)
            .await?
            .invoices)
    }

    /// [`Self::read_invoices`] for the orders `chunk`: a failed read fails each of them (tried
    /// again), and gives `None`.
    pub(crate) async fn read_invoices_of<S: AsRef<str>>(
        &self,
        groups: &mut [OrderWork],
        chunk: &[usize],
        by: InvoicesBy,
        keys: &[S],
    ) -> Option<Vec<ledgerline_xero_client::model::Invoice>> {
        match self.read_invoices(by, keys).await {
            Ok(list) => Some(list),
            Err(e) => {
                for &i in chunk {
                    groups[i].transient(e.to_string());
                }
                None
            }
        }
    }

    /// Sends the next request of `chunks` (at most the batch size of its items, each the index of
    /// its order's group, a key kept beside it, and the element to send) and returns each item
    /// with the element Xero answered for it; `None` once every item was sent. The caller
    /// handles one request's answers before the next is sent, as a batch of calls is made one
    /// after another. A request that fails fails its orders as `on_fail` says; an element missing
    /// from an answer fails its order (tried again); neither comes back.
    pub(crate) async fn write_chunk<K, B: serde::Serialize, E>(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        req: Request<'_>,
        on_fail: OnFail,
        chunks: &mut Chunks<K, B>,
        elements: impl Fn(Response) -> Vec<E>,
    ) -> Option<Vec<Sent<K, B, E>>> {
        let chunk: Vec<(usize, K, B)> = chunks
            .items
            .by_ref()
            .take(self.shared.config.batch_size.max(1))
            .collect();
        if chunk.is_empty() {
            return None;
        }
        let body: Vec<&B> = chunk.iter().map(|(_, _, b)| b).collect();
        let answer = self
            .batch_call(
                req.method.clone(),
                req.path,
                req.collection,
                &body,
                req.unitdp4,
            )
            .await;
        let els = match answer {
            Ok(r) => elements(r),
            Err(e) => {
                for (i, _, _) in &chunk {
                    match on_fail {
                        OnFail::Review => self.call_failed(&mut groups[*i], msgs, &e).await,
                        OnFail::Retry => groups[*i].transient(e.to_string()),
                    }
                }
                return Some(vec![]);
            }
        };
        let mut els = els.into_iter();
        let mut out = Vec::with_capacity(chunk.len());
        for (group, key, body) in chunk {
            match els.next() {
                Some(answer) => out.push(Sent {
                    group,
                    key,
                    body,
                    answer,
                }),
                None => groups[group].transient(format!(
                    "Xero's answer to {} {} lacks an element",
                    req.method, req.path
                )),
            }
        }
        Some(out)
    }
}

/// The items of a batched write not sent yet (see [`TenantWorker::write_chunk`]).
#[derive(Debug)]
pub(crate) struct Chunks<K, B> {
    items: std::vec::IntoIter<(usize, K, B)>,
}

impl<K, B> Chunks<K, B> {
    /// `items` to send.
    pub(crate) fn new(items: Vec<(usize, K, B)>) -> Self {
        Self {
            items: items.into_iter(),
        }
    }
}

/// An element sent in a batched write, with Xero's answer for it.
#[derive(Debug)]
pub(crate) struct Sent<K, B, E> {
    /// The order's group.
    pub(crate) group: usize,
    /// What the caller kept beside the element (e.g. the source payment id).
    pub(crate) key: K,
    /// The element sent.
    pub(crate) body: B,
    /// Xero's element for it.
    pub(crate) answer: E,
}
