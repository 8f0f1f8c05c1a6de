//! CUSTOMERS → contact upserts: a customer (B2B account) that changes updates its Xero contact
//! (matched by the cache or ContactNumber, never by name); one not yet in Xero is created.

use crate::contacts::{self, ContactSpec, Origin, Resolved, details_hash};
use crate::worker::Shared;
use crate::worker::batch::pull_batch;
use crate::worker::settle::dead_letter;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{CustomerEvent, ReasonClass, XeroDocumentKind, XeroFact, XeroVerb};
use ledgerline_mapping::GuestPolicy;
use ledgerline_xero_client::model::send::envelope;
use ledgerline_xero_client::{Client, Element, Refusal, hex};
use prost::Message as _;
use reqwest::Method;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One tenant's CUSTOMERS worker.
#[derive(Debug)]
pub struct CustomerWorker {
    shared: Shared,
    client: Arc<Client>,
    desk: contacts::Desk,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Update<'a> {
    #[serde(rename = "ContactID")]
    contact_id: &'a str,
    #[serde(flatten)]
    spec: &'a ContactSpec,
}

impl CustomerWorker {
    /// A worker sharing the tenant's client (budget, breaker, token).
    pub fn new(shared: Shared, client: Arc<Client>, desk: contacts::Desk) -> Self {
        Self {
            shared,
            client,
            desk,
        }
    }

    /// Pulls and upserts until `shutdown`.
    pub async fn run(self, consumer: PullConsumer, shutdown: CancellationToken) {
        let tenant = self.client.tenant().to_owned();
        while !shutdown.is_cancelled() {
            if self.client.breaker.state() != ledgerline_xero_client::budget::BreakerState::Closed
                || self.shared.is_paused(&tenant)
                || !self.client.is_connected()
            {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let (max, linger) = crate::worker::batch::linger(
                &self.client.budget,
                self.shared.config.batch_size * 4,
                self.shared.config.max_linger,
            );
            let msgs = match pull_batch(&consumer, max, linger, &shutdown).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "Customer pull failed; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            if !msgs.is_empty() && !self.shared.config.dry_run {
                self.process(msgs).await;
            } else {
                for m in msgs {
                    let _ = m.ack_with(AckKind::Ack).await;
                }
            }
        }
    }

    async fn process(&self, msgs: Vec<Message>) {
        let tenant = self.client.tenant().to_owned();
        let mapping = self.shared.mapping.current();
        let mut outcome: Vec<AckKind> = vec![AckKind::Ack; msgs.len()];
        // Newest version per contact.
        let mut newest: HashMap<String, (u64, usize, ContactSpec, String)> = HashMap::new();
        let mut events_of: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, msg) in msgs.iter().enumerate() {
            let ev = match CustomerEvent::decode(msg.payload.as_ref()) {
                Ok(e) => e,
                Err(e) => {
                    let stored = dead_letter(
                        &self.shared.publisher,
                        &tenant,
                        msg,
                        ReasonClass::Malformed,
                        &format!("CustomerEvent: {e}"),
                        vec![],
                        None,
                        "",
                        "",
                    )
                    .await;
                    outcome[i] = if stored {
                        AckKind::Term
                    } else {
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    };
                    continue;
                }
            };
            let c = ev.customer.clone().unwrap_or_default();
            if c.is_guest && mapping.mapping.contacts.guests == GuestPolicy::Single {
                continue;
            }
            let store = ev
                .meta
                .as_ref()
                .map(|m| m.store.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| msg.subject.split('.').nth(1).unwrap_or_default().to_owned());
            let spec = contacts::spec_for(&c, &store, &c.account_id, None, None, &mapping.mapping);
            events_of
                .entry(spec.contact_number.clone())
                .or_default()
                .push(i);
            let slot = newest.entry(spec.contact_number.clone()).or_insert((
                c.version,
                i,
                spec.clone(),
                store.clone(),
            ));
            if c.version >= slot.0 {
                *slot = (c.version, i, spec, store);
            }
        }
        let mut failed: HashMap<String, String> = HashMap::new();
        let mut facts: Vec<XeroFact> = Vec::new();
        // Known contacts are updated (unless unchanged); others are found or created.
        let mut updates: Vec<(String, String, ContactSpec, String, usize)> = Vec::new();
        let mut unknown: Vec<ContactSpec> = Vec::new();
        let mut store_of: HashMap<String, String> = HashMap::new();
        let keyed: Vec<_> = newest
            .iter()
            .map(|(number, (_, idx, spec, store))| {
                store_of.insert(number.clone(), store.clone());
                (
                    number,
                    *idx,
                    spec,
                    contacts::cache_key(&tenant, store, &spec.identity),
                )
            })
            .collect();
        let cache = &self.shared.contacts;
        let hits =
            contacts::read_all(cache, keyed.iter().map(|(.., key)| key.clone()).collect()).await;
        for ((number, idx, spec, key), hit) in keyed.into_iter().zip(hits) {
            match hit {
                Ok(Some(v)) if !v.is_empty() => {
                    let text = String::from_utf8_lossy(&v).into_owned();
                    let hash = details_hash(spec);
                    if text.split(' ').nth(1) != Some(hash.as_str()) {
                        updates.push((contacts::cached_id(&v), key, spec.clone(), hash, idx));
                    }
                }
                Ok(_) => unknown.push(spec.clone()),
                Err(e) => {
                    failed.insert(number.clone(), e.to_string());
                }
            }
        }
        // A name taken by another contact is retried once as it was disambiguated at creation
        // (the email in brackets), which keeps such a contact's name as it is.
        let mut round = updates;
        for attempt in 0..2 {
            let mut retry = Vec::new();
            for chunk in round.chunks(self.shared.config.batch_size) {
                let body: Vec<Update<'_>> = chunk
                    .iter()
                    .map(|(id, _, spec, _, _)| Update {
                        contact_id: id,
                        spec,
                    })
                    .collect();
                let body = envelope("Contacts", &body);
                let resp = self
                    .client
                    .call(
                        Method::POST,
                        "/Contacts",
                        &[("summarizeErrors", "false".into())],
                        Some(body),
                    )
                    .await;
                let els = match resp {
                    Ok(v) => v.contacts,
                    Err(e) => {
                        for (_, _, spec, _, _) in chunk {
                            failed.insert(spec.contact_number.clone(), e.to_string());
                        }
                        continue;
                    }
                };
                for (n, (id, key, spec, hash, idx)) in chunk.iter().enumerate() {
                    let el = els.get(n).cloned().unwrap_or_default();
                    let refusal = el.refusal();
                    if refusal.is_none() {
                        let _ = self
                            .shared
                            .contacts
                            .put(key, format!("{id} {hash}").into_bytes().into())
                            .await;
                        facts.push(self.fact(id, spec, XeroVerb::Updated, &store_of));
                    } else if attempt == 0
                        && matches!(refusal, Some(Refusal::DuplicateContactName(_)))
                    {
                        let mut s2 = spec.clone();
                        s2.name = contacts::disambiguated(spec);
                        retry.push((id.clone(), key.clone(), s2, hash.clone(), *idx));
                    } else {
                        // A name taken by another contact, or an archived contact: a person decides.
                        let errors = refusal.as_ref().map(Refusal::message).unwrap_or_default();
                        let stored = dead_letter(
                            &self.shared.publisher,
                            &tenant,
                            &msgs[*idx],
                            ReasonClass::XeroValidation,
                            &format!("contact {}: {errors}", spec.name),
                            vec![],
                            None,
                            "",
                            &spec.contact_number,
                        )
                        .await;
                        if !stored {
                            failed.insert(
                                spec.contact_number.clone(),
                                "dead letter not stored".into(),
                            );
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            round = retry;
        }
        if !unknown.is_empty() {
            let resolved = self
                .desk
                .resolve(contacts::Path::Customers, &store_of, unknown.clone())
                .await;
            for spec in &unknown {
                match resolved.get(&spec.contact_number) {
                    // Created from these very details (the desk cached it with their hash, so
                    // the next event with the same details needs no update).
                    Some(Resolved::Id(id, Origin::Created)) => {
                        facts.push(self.fact(id, spec, XeroVerb::Created, &store_of))
                    }
                    Some(Resolved::Id(id, _)) => {
                        facts.push(self.fact(id, spec, XeroVerb::Adopted, &store_of))
                    }
                    Some(Resolved::Refused(e)) | Some(Resolved::Transient(e)) => {
                        failed.insert(spec.contact_number.clone(), e.clone());
                    }
                    None => {
                        failed.insert(spec.contact_number.clone(), "not resolved".into());
                    }
                }
            }
        }
        for f in &facts {
            let subject = subjects::xero(&tenant, f.kind(), f.verb(), &f.order_key);
            if let Err(e) = self
                .shared
                .publisher
                .publish_proto(subject, &f.fact_id, f, Default::default())
                .await
            {
                tracing::warn!(error = %e, "Fact not published.");
            }
        }
        // Every event of a contact that failed is retried (the newest carries everything).
        for (number, why) in &failed {
            tracing::debug!(contact = %number, why, "Customer will be retried.");
            for &i in events_of.get(number).into_iter().flatten() {
                outcome[i] = AckKind::Nak(Some(Duration::from_secs(2)));
            }
        }
        for (msg, kind) in msgs.iter().zip(outcome) {
            let _ = msg.ack_with(kind).await;
        }
    }

    /// The fact about a contact; its key is `<store>/<contact number>`.
    fn fact(
        &self,
        id: &str,
        spec: &ContactSpec,
        verb: XeroVerb,
        store_of: &HashMap<String, String>,
    ) -> XeroFact {
        let store = store_of
            .get(&spec.contact_number)
            .cloned()
            .unwrap_or_default();
        let src = format!(
            "{}|contact|{verb:?}|{id}|{}",
            self.client.tenant(),
            details_hash(spec)
        );
        XeroFact {
            fact_id: format!("xf-{}", &hex(&Sha256::digest(src.as_bytes()))[..40]),
            tenant_id: self.client.tenant().to_owned(),
            kind: XeroDocumentKind::Contact as i32,
            verb: verb as i32,
            xero_id: id.to_owned(),
            number: spec.contact_number.clone(),
            order_key: format!("{store}/{}", spec.contact_number),
            store,
            status: "ACTIVE".into(),
            written_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        }
    }
}
