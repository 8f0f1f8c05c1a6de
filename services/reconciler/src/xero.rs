//! Reading Xero, cheaply: documents named by Xero's webhooks (fetched in batches by id) and a
//! poll of what changed since the last look (`If-Modified-Since`, paged) for what webhooks do
//! not cover (payments). Every call goes through the shared budget in the reconcile lane (a
//! capped share of each tenant's day), and its egress is counted with the writer's. What is read
//! is published on OBSERVED before the projection uses it.

use crate::config::Config;
use crate::projection::Projection;
use async_nats::jetstream::kv;
use bytes::Bytes;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{Money, XeroDocumentKind, XeroObservation};
use ledgerline_platform::publish::Publisher;
use ledgerline_xero_client::budget::{Lane, in_lane};
use ledgerline_xero_client::model::{self, Contact, CreditNote, Invoice, Payment};
use ledgerline_xero_client::{Client, XeroError};
use reqwest::Method;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Ids per lookup (Xero's URL limit takes about 50 GUIDs).
const IDS_PER_CALL: usize = 40;
/// Documents per poll page.
const PAGE_SIZE: usize = 100;

/// The tenants' clients.
#[derive(Debug, Clone, Default)]
pub struct Tenants(pub Arc<BTreeMap<String, Arc<Client>>>);

impl Tenants {
    /// The client of `tenant`.
    pub fn get(&self, tenant: &str) -> Option<&Arc<Client>> {
        self.0.get(tenant)
    }
}

/// Builds a read client for each tenant, sharing the writer's budget and the app's egress.
pub async fn clients(
    cfg: &Config,
    js: &async_nats::jetstream::Context,
    tenants: &[String],
    shutdown: &tokio_util::sync::CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Tenants> {
    let endpoint = cfg.xero.endpoint("ledgerline-reconciler")?;
    let tokens = js
        .get_key_value(ledgerline_contract::buckets::XERO_TOKENS.bucket)
        .await?;
    let rate = js
        .get_key_value(ledgerline_contract::buckets::RATE_BUDGET.bucket)
        .await?;
    let egress = Arc::new(
        ledgerline_xero_client::egress::Egress::new(
            &cfg.xero.client_id,
            cfg.xero.egress_allowance,
            cfg.xero.egress_cap,
        )
        .shared(rate.clone()),
    );
    tasks.push(tokio::spawn(
        egress.clone().run(Duration::from_secs(5), shutdown.clone()),
    ));
    let mut out = BTreeMap::new();
    for t in tenants {
        let budget = Arc::new(
            ledgerline_xero_client::budget::Budget::new(t, cfg.xero.limits)
                .background_share(cfg.day_share)
                .shared(rate.clone(), cfg.xero.limits)
                .call_lease(cfg.xero.timeout + Duration::from_secs(5)),
        );
        let breaker = Arc::new(ledgerline_xero_client::budget::Breaker::new(
            t,
            5,
            Duration::from_secs(30),
        ));
        let mut client = Client::new(
            endpoint.clone(),
            t,
            Some(tokens.clone()),
            budget,
            breaker,
            shutdown.clone(),
        )
        .with_egress(egress.clone());
        if cfg.xero.grant_type == ledgerline_xero_client::settings::GrantType::AuthorizationCode {
            let connection = Arc::new(ledgerline_xero_client::oauth::Connection::new(
                t,
                tokens.clone(),
                None,
            ));
            tasks.push(tokio::spawn(
                connection.clone().watch(endpoint.clone(), shutdown.clone()),
            ));
            client = client.with_connection(connection);
        }
        out.insert(t.clone(), Arc::new(client));
    }
    Ok(Tenants(Arc::new(out)))
}

fn money(amount: Option<Decimal>, currency: &str) -> Option<Money> {
    amount.map(|a| Money {
        amount: a.to_string(),
        currency: currency.to_owned(),
    })
}

fn observed_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn invoice(tenant: &str, i: &Invoice, source: &str) -> XeroObservation {
    XeroObservation {
        tenant_id: tenant.to_owned(),
        kind: XeroDocumentKind::Invoice as i32,
        xero_id: i.invoice_id.clone(),
        number: i.invoice_number.clone(),
        reference: i.reference.clone(),
        status: i.status.clone(),
        total: money(i.total, &i.currency_code),
        amount_due: money(i.amount_due, &i.currency_code),
        amount_paid: money(i.amount_paid, &i.currency_code),
        updated_utc: model::xero_date(&i.updated_date_utc).unwrap_or_default(),
        document_id: String::new(),
        payment_ids: i.payments.iter().map(|p| p.payment_id.clone()).collect(),
        observed_at: observed_now(),
        source: source.to_owned(),
        tax: money(i.total_tax, &i.currency_code),
        account_code: String::new(),
        currency_rate: i.currency_rate.map(|r| r.to_string()).unwrap_or_default(),
    }
}

fn credit_note(tenant: &str, c: &CreditNote, source: &str) -> XeroObservation {
    XeroObservation {
        tenant_id: tenant.to_owned(),
        kind: XeroDocumentKind::CreditNote as i32,
        xero_id: c.credit_note_id.clone(),
        number: c.credit_note_number.clone(),
        status: c.status.clone(),
        total: money(c.total, ""),
        amount_due: money(c.remaining_credit, ""),
        updated_utc: model::xero_date(&c.updated_date_utc).unwrap_or_default(),
        payment_ids: c.payments.iter().map(|p| p.payment_id.clone()).collect(),
        observed_at: observed_now(),
        source: source.to_owned(),
        ..Default::default()
    }
}

fn payment(tenant: &str, p: &Payment, source: &str) -> XeroObservation {
    let document_id = p
        .invoice
        .as_ref()
        .map(|i| i.invoice_id.clone())
        .or_else(|| p.credit_note.as_ref().map(|c| c.credit_note_id.clone()))
        .unwrap_or_default();
    XeroObservation {
        tenant_id: tenant.to_owned(),
        kind: XeroDocumentKind::Payment as i32,
        xero_id: p.payment_id.clone(),
        status: p.status.clone(),
        total: money(p.amount, ""),
        updated_utc: model::xero_date(&p.updated_date_utc).unwrap_or_default(),
        account_code: p
            .account
            .as_ref()
            .map(|a| a.code.clone())
            .unwrap_or_default(),
        document_id,
        observed_at: observed_now(),
        source: source.to_owned(),
        ..Default::default()
    }
}

fn contact(tenant: &str, c: &Contact, source: &str) -> XeroObservation {
    XeroObservation {
        tenant_id: tenant.to_owned(),
        kind: XeroDocumentKind::Contact as i32,
        xero_id: c.contact_id.clone(),
        number: c.contact_number.clone(),
        status: c.contact_status.clone(),
        // Part of the observation's id: archived, then restored, is two observations.
        updated_utc: model::xero_date(&c.updated_date_utc).unwrap_or_default(),
        observed_at: observed_now(),
        source: source.to_owned(),
        ..Default::default()
    }
}

/// Publishes observations on OBSERVED. An identical read (same document, state and time) is
/// stored once.
pub async fn publish(publisher: &Publisher, obs: &[XeroObservation]) -> bool {
    let mut ok = true;
    for o in obs {
        let id_src = format!(
            "{}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{}",
            o.tenant_id,
            o.kind,
            o.xero_id,
            o.updated_utc,
            o.status,
            o.total,
            o.amount_due,
            o.amount_paid,
            o.payment_ids.join(",")
        );
        let id = format!(
            "obs-{}",
            &ledgerline_xero_client::hex(&Sha256::digest(id_src.as_bytes()))[..40]
        );
        ok &= publisher
            .publish_proto_retrying(
                subjects::observed(&o.tenant_id, o.kind()),
                &id,
                o,
                "observation",
            )
            .await;
    }
    ok
}

/// One of Xero's webhook events.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    resource_id: String,
    event_category: String,
    tenant_id: String,
    #[serde(default)]
    event_date_utc: String,
}

/// How close a webhook's time must be to the writer's last write of the order for the event
/// to be taken as that write (Xero sends a webhook for the writer's own writes too).
const OWN_WRITE: chrono::Duration = chrono::Duration::seconds(2);

/// Whether the event is the writer's own write: the order of its document was written by the
/// writer within [`OWN_WRITE`] of the event (a contact: its latest order). A change a person
/// makes seconds after a write is missed here and found by the next poll (a contact archived
/// then: by the writer's next write for it, which Xero refuses, and the review queue).
async fn own_write(projection: &Projection, e: &Event) -> bool {
    let Some(key) = projection.order_of(&e.resource_id).await else {
        return false;
    };
    let Some((store, id)) = key.split_once('/') else {
        return false;
    };
    let Ok((view, _)) = projection.load(store, id).await else {
        return false;
    };
    let written = chrono::DateTime::parse_from_rfc3339(&view.xero.last_write_at)
        .map(|t| t.with_timezone(&chrono::Utc));
    match (event_time(&e.event_date_utc), written) {
        (Some(ev), Ok(w)) => (ev - w).abs() <= OWN_WRITE,
        _ => false,
    }
}

/// A webhook event's `eventDateUtc` (`2017-06-21T01:15:39.902`, UTC without a zone).
fn event_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[derive(Debug, serde::Deserialize)]
struct Delivery {
    #[serde(default)]
    events: Vec<Event>,
}

/// A webhook delivery (from XERO_HOOKS): the documents it names are read in Xero and published
/// as observations. Events of tenants this reconciler has no client for are skipped.
pub async fn delivery(
    tenants: &Tenants,
    publisher: &Publisher,
    projection: &Projection,
    body: &[u8],
) -> Result<usize, XeroError> {
    let d: Delivery = serde_json::from_slice(body)
        .map_err(|e| XeroError::Transient(format!("unreadable delivery: {e}")))?;
    // The writer's fact of a write follows Xero's answer by a moment, and Xero's webhook can
    // overtake it: give facts a second, so a write of its own is known as such.
    if let Some(newest) = d
        .events
        .iter()
        .filter_map(|e| event_time(&e.event_date_utc))
        .max()
    {
        let settle = newest + chrono::Duration::seconds(1) - chrono::Utc::now();
        if let Ok(wait) = settle.to_std() {
            tokio::time::sleep(wait).await;
        }
    }
    let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in d.events {
        if own_write(projection, &e).await {
            metrics::counter!("recon_xero_webhook_events_total", "outcome" => "own_write")
                .increment(1);
            continue;
        }
        metrics::counter!("recon_xero_webhook_events_total", "outcome" => "looked_up").increment(1);
        by.entry((e.tenant_id.to_ascii_lowercase(), e.event_category))
            .or_default()
            .push(e.resource_id);
    }
    let mut n = 0;
    for ((tenant, category), mut ids) in by {
        let Some(client) = tenants.get(&tenant) else {
            continue;
        };
        ids.sort();
        ids.dedup();
        // A person's change in Xero is news to act on: looked up at once, as live work (the
        // writer's own writes were skipped above, so these are few); the poll is the capped,
        // background lane.
        let obs = read(client, &tenant, &category, &ids).await?;
        n += obs.len();
        if !publish(publisher, &obs).await {
            return Err(XeroError::Transient("observations not stored".into()));
        }
    }
    Ok(n)
}

/// The documents `ids` of `category` (INVOICE, CREDITNOTE, CONTACT), read in batches.
async fn read(
    client: &Client,
    tenant: &str,
    category: &str,
    ids: &[String],
) -> Result<Vec<XeroObservation>, XeroError> {
    let mut out = Vec::new();
    match category {
        "INVOICE" => {
            for chunk in ids.chunks(IDS_PER_CALL) {
                let q = [("IDs", chunk.join(","))];
                let r = client.call(Method::GET, "/Invoices", &q, None).await?;
                out.extend(r.invoices.iter().map(|i| invoice(tenant, i, "webhook")));
            }
        }
        "CREDITNOTE" => {
            for id in ids {
                let r = client
                    .call(Method::GET, &format!("/CreditNotes/{id}"), &[], None)
                    .await?;
                out.extend(
                    r.credit_notes
                        .iter()
                        .map(|c| credit_note(tenant, c, "webhook")),
                );
            }
        }
        "CONTACT" => {
            for chunk in ids.chunks(IDS_PER_CALL) {
                // Archived contacts are what this read is for: Xero leaves them out unless asked.
                let q = [
                    ("IDs", chunk.join(",")),
                    ("includeArchived", "true".to_owned()),
                    ("summaryOnly", "true".to_owned()),
                ];
                let r = client.call(Method::GET, "/Contacts", &q, None).await?;
                out.extend(r.contacts.iter().map(|c| contact(tenant, c, "webhook")));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Polls `client`'s tenant once: invoices, credit notes and payments changed since each one's
/// cursor (kept in RECON_STATE), page by page; returns the observations published.
pub async fn poll(
    client: &Client,
    tenant: &str,
    state: &kv::Store,
    publisher: &Publisher,
    first_since: &str,
) -> Result<usize, XeroError> {
    in_lane(Lane::Reconcile, async {
        let mut n = 0;
        for what in ["Invoices", "CreditNotes", "Payments"] {
            let key = format!("poll.{tenant}.{what}");
            let since = match state.get(&key).await {
                Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                _ => first_since.to_owned(),
            };
            let mut latest = since.clone();
            let mut page = 1usize;
            loop {
                let q = [("page", page.to_string())];
                let r = client
                    .get_modified_since(&format!("/{what}"), &q, &header_time(&since))
                    .await?;
                let obs: Vec<XeroObservation> = match what {
                    "Invoices" => r
                        .invoices
                        .iter()
                        .map(|i| invoice(tenant, i, "poll"))
                        .collect(),
                    "CreditNotes" => r
                        .credit_notes
                        .iter()
                        .map(|c| credit_note(tenant, c, "poll"))
                        .collect(),
                    _ => r
                        .payments
                        .iter()
                        .map(|p| payment(tenant, p, "poll"))
                        .collect(),
                };
                let count = obs.len();
                for o in &obs {
                    if o.updated_utc > latest {
                        latest = o.updated_utc.clone();
                    }
                }
                if !publish(publisher, &obs).await {
                    return Err(XeroError::Transient("observations not stored".into()));
                }
                n += count;
                if count < PAGE_SIZE {
                    break;
                }
                page += 1;
            }
            if latest != since {
                let _ = state.put(&key, Bytes::from(latest)).await;
            }
        }
        Ok(n)
    })
    .await
}

/// An RFC 3339 instant as Xero takes it in `If-Modified-Since`: UTC, to the second (a
/// document of that second comes back again, and its observation is stored once).
fn header_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_owned())
}
