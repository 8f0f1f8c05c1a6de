//! Customer → Xero contact: ContactNumber is the stable key (store + identity key); match by it,
//! else by email when exactly one active contact has it, never by name alone. A new contact
//! whose name is taken gets the email in brackets. Matches are cached in the CONTACTS bucket.

use async_nats::jetstream::kv;
use futures::StreamExt;
use ledgerline_contract::v1::{Customer, Order};
use ledgerline_mapping::{FieldTarget, GuestPolicy, Mapping};
use ledgerline_xero_client::model::Contact;
use ledgerline_xero_client::model::send::{self, envelope};
use ledgerline_xero_client::{Client, Element, Refusal, Response, hex};
use reqwest::Method;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// What the writer knows about the customer of an order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactSpec {
    /// Display name (unique among active contacts in Xero).
    pub name: String,
    /// Stable external key.
    pub contact_number: String,
    /// First name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    /// Last name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// Email.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email_address: String,
    /// Addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<send::Address>,
    /// AccountNumber, from the custom field the mapping targets at `contact.account_number`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_number: String,
    /// TaxNumber (`contact.tax_number`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tax_number: String,
    /// Sales payment terms (`contact.payment_terms_days`: days after the invoice date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_terms: Option<ledgerline_xero_client::model::PaymentTerms>,
    /// Identity key (cache key), not sent.
    #[serde(skip)]
    pub identity: String,
}

fn address(kind: &str, a: &ledgerline_contract::v1::Address) -> send::Address {
    let line = |i: usize| a.lines.get(i).map(|l| l.chars().take(500).collect());
    send::Address {
        line1: line(0),
        line2: line(1),
        line3: line(2),
        line4: line(3),
        kind: kind.to_owned(),
        city: a.city.clone(),
        region: if a.region_name.is_empty() {
            a.region_code.clone()
        } else {
            a.region_name.clone()
        },
        postal_code: a.postal_code.clone(),
        country: a
            .country_name
            .chars()
            .filter(|c| c.is_alphabetic() || *c == ' ')
            .take(50)
            .collect(),
    }
}

/// The contact an order posts to.
pub fn spec(order: &Order, mapping: &Mapping) -> ContactSpec {
    let mut c: Customer = order.customer.clone().unwrap_or_default();
    // Custom fields come from the account, else the order.
    for (k, v) in &order.attributes {
        c.attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    spec_for(
        &c,
        &order.store,
        &order.id,
        order.billing_address.as_ref(),
        order.shipping_address.as_ref(),
        mapping,
    )
}

/// The contact for a customer (from an order, or a CUSTOMERS event).
pub fn spec_for(
    c: &Customer,
    store: &str,
    fallback_id: &str,
    order_billing: Option<&ledgerline_contract::v1::Address>,
    order_shipping: Option<&ledgerline_contract::v1::Address>,
    mapping: &Mapping,
) -> ContactSpec {
    if c.is_guest && mapping.contacts.guests == GuestPolicy::Single {
        return ContactSpec {
            name: mapping.contacts.guest_contact_name.clone(),
            contact_number: format!("{store}:guests"),
            first_name: String::new(),
            last_name: String::new(),
            email_address: String::new(),
            addresses: vec![],
            account_number: String::new(),
            tax_number: String::new(),
            payment_terms: None,
            identity: "guests".into(),
        };
    }
    let identity = if c.identity_key.is_empty() {
        c.email.to_ascii_lowercase()
    } else {
        c.identity_key.clone()
    };
    let identity = if identity.is_empty() {
        format!("order:{fallback_id}")
    } else {
        identity
    };
    let person = format!("{} {}", c.first_name.trim(), c.last_name.trim())
        .trim()
        .to_owned();
    let name = [
        c.account_name.trim(),
        if c.is_guest { "" } else { c.company.trim() },
        person.as_str(),
        c.email.trim(),
        identity.as_str(),
    ]
    .into_iter()
    .find(|n| !n.is_empty())
    .unwrap_or("Customer")
    .chars()
    .take(255)
    .collect();
    let mut number = format!("{store}:{identity}");
    if number.chars().count() > 50 {
        number = format!(
            "{store}:{}",
            &hex(&Sha256::digest(identity.as_bytes()))[..(49 - store.len().min(16)).min(40)]
        );
    }
    let mut addresses = Vec::new();
    let billing = c.billing_address.as_ref().or(order_billing);
    if let Some(a) = billing {
        addresses.push(address("POBOX", a));
    }
    if let Some(a) = order_shipping.or(c.shipping_address.as_ref()) {
        addresses.push(address("STREET", a));
    }
    let field = |target| {
        mapping
            .field_value(target, &c.attributes)
            .map(|v| v.trim().chars().take(50).collect::<String>())
            .unwrap_or_default()
    };
    let terms = field(FieldTarget::ContactPaymentTermsDays);
    let payment_terms = match terms.parse::<u32>() {
        Ok(days) if days <= 365 => Some(crate::terms::Terms::days_after(days)),
        _ if terms.is_empty() => None,
        _ => {
            // A bad value must not hold up the invoice: the contact goes without terms.
            tracing::warn!(contact_number = %number, value = %terms, "Payment terms custom field is not a number of days; left off.");
            None
        }
    };
    ContactSpec {
        name,
        contact_number: number,
        first_name: c.first_name.chars().take(255).collect(),
        last_name: c.last_name.chars().take(255).collect(),
        email_address: c.email.chars().take(255).collect(),
        addresses,
        account_number: field(FieldTarget::ContactAccountNumber),
        tax_number: field(FieldTarget::ContactTaxNumber),
        payment_terms,
        identity,
    }
}

/// The name a contact gets when its own is taken: the email (else the number) in brackets.
pub fn disambiguated(s: &ContactSpec) -> String {
    let tag = if s.email_address.is_empty() {
        &s.contact_number
    } else {
        &s.email_address
    };
    format!("{} ({tag})", s.name).chars().take(255).collect()
}

/// The ContactID in a cache value (`<id>` or `<id> <details hash>`).
pub fn cached_id(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    text.split(' ').next().unwrap_or_default().to_owned()
}

/// Cache key in the CONTACTS bucket.
pub fn cache_key(tenant: &str, store: &str, identity: &str) -> String {
    format!(
        "{tenant}.{store}.{}",
        &hex(&Sha256::digest(identity.as_bytes()))[..32]
    )
}

/// Where a ContactID came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The CONTACTS bucket (no call spent).
    Cached,
    /// An existing Xero contact (by ContactNumber, or by the only active contact with the email).
    Found,
    /// Created now.
    Created,
}

/// How each spec was resolved.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Known: from the cache, found in Xero, or created now.
    Id(String, Origin),
    /// Xero refused it.
    Refused(String),
    /// Try later.
    Transient(String),
}

fn quote_ok(s: &str) -> bool {
    !s.contains('"') && !s.contains('\\')
}

/// Resolves specs (deduplicated by ContactNumber) to ContactIDs, spending as few calls as it can.
pub async fn resolve(
    client: &Client,
    cache: &kv::Store,
    store_of: &HashMap<String, String>,
    specs: Vec<ContactSpec>,
    batch: usize,
) -> HashMap<String, Resolved> {
    let tenant = client.tenant().to_owned();
    let mut out: HashMap<String, Resolved> = HashMap::new();
    let mut misses = Vec::new();
    let identities: HashMap<String, String> = specs
        .iter()
        .map(|s| (s.contact_number.clone(), s.identity.clone()))
        .collect();
    let mut unique: Vec<ContactSpec> = Vec::new();
    for s in specs {
        if !unique.iter().any(|u| u.contact_number == s.contact_number) {
            unique.push(s);
        }
    }
    let keyed: Vec<(ContactSpec, String)> = unique
        .into_iter()
        .map(|s| {
            let store = store_of.get(&s.contact_number).cloned().unwrap_or_default();
            let key = cache_key(&tenant, &store, &s.identity);
            (s, key)
        })
        .collect();
    // Cache reads side by side.
    let reads: Vec<_> = keyed
        .iter()
        .map(|(_, key)| async move { cache.get(key).await })
        .collect();
    let cached: Vec<_> = futures::stream::iter(reads).buffered(64).collect().await;
    let mut unknown = Vec::new();
    for ((s, key), hit) in keyed.into_iter().zip(cached) {
        match hit {
            Ok(Some(v)) if !v.is_empty() => {
                out.insert(
                    s.contact_number.clone(),
                    Resolved::Id(cached_id(&v), Origin::Cached),
                );
            }
            _ => unknown.push((s, key)),
        }
    }
    let cached_ids: std::collections::HashSet<String> = out.keys().cloned().collect();
    // One creation per contact: the order path, the customer path and every replica may meet a
    // new customer at once; the one that claims it searches and creates, the others wait for
    // its ContactID in the cache instead of racing to "already exists".
    // Claims side by side, as the cache reads.
    let claimed: Vec<_> = futures::stream::iter(unknown.into_iter().map(|(s, key)| async move {
        let c = claim(cache, &key).await;
        (s, key, c)
    }))
    .buffered(64)
    .collect()
    .await;
    let mut claims = Vec::new();
    let mut waits = Vec::new();
    for (s, key, c) in claimed {
        match c {
            Claim::Ours(claim_key) => {
                claims.push(claim_key);
                misses.push(s);
            }
            Claim::Theirs => waits.push((s.contact_number.clone(), key)),
        }
    }
    // One search per chunk: by ContactNumber, and by email for the "exactly one" rule.
    let mut to_create = Vec::new();
    for chunk in misses.chunks(20) {
        let mut terms = Vec::new();
        for s in chunk {
            if quote_ok(&s.contact_number) {
                terms.push(format!("ContactNumber==\"{}\"", s.contact_number));
            }
            if !s.email_address.is_empty() && quote_ok(&s.email_address) {
                terms.push(format!("EmailAddress==\"{}\"", s.email_address));
            }
        }
        let found = if terms.is_empty() {
            Ok(Response::default())
        } else {
            client
                .call(
                    Method::GET,
                    "/Contacts",
                    &[("where", terms.join(" OR ")), ("pageSize", "1000".into())],
                    None,
                )
                .await
        };
        let found = match found {
            Ok(v) => v,
            Err(e) => {
                for s in chunk {
                    out.insert(s.contact_number.clone(), Resolved::Transient(e.to_string()));
                }
                continue;
            }
        };
        let list = found.contacts;
        for s in chunk {
            let by_number = list.iter().find(|c| c.contact_number == s.contact_number);
            let by_email: Vec<&Contact> = if s.email_address.is_empty() {
                vec![]
            } else {
                list.iter()
                    .filter(|c| {
                        c.contact_status == "ACTIVE"
                            && c.email_address.eq_ignore_ascii_case(&s.email_address)
                    })
                    .collect()
            };
            let hit = by_number.or(if by_email.len() == 1 {
                Some(by_email[0])
            } else {
                None
            });
            match hit
                .map(|c| c.contact_id.as_str())
                .filter(|id| !id.is_empty())
            {
                Some(id) => {
                    out.insert(
                        s.contact_number.clone(),
                        Resolved::Id(id.to_owned(), Origin::Found),
                    );
                }
                None => to_create.push(s.clone()),
            }
        }
    }
    // Create; a taken name is retried once with the email (or number) in brackets.
    let mut round = to_create;
    for attempt in 0..2 {
        let mut retry = Vec::new();
        for chunk in round.chunks(batch.max(1)) {
            let resp = client
                .call(
                    Method::PUT,
                    "/Contacts",
                    &[("summarizeErrors", "false".into())],
                    Some(envelope("Contacts", chunk)),
                )
                .await;
            let resp = match resp {
                Ok(v) => v,
                Err(e) => {
                    for s in chunk {
                        let r = if e.is_transient() {
                            Resolved::Transient(e.to_string())
                        } else {
                            Resolved::Refused(e.to_string())
                        };
                        out.insert(s.contact_number.clone(), r);
                    }
                    continue;
                }
            };
            let els = resp.contacts;
            for (i, s) in chunk.iter().enumerate() {
                let Some(el) = els.get(i) else {
                    out.insert(
                        s.contact_number.clone(),
                        Resolved::Transient("missing element".into()),
                    );
                    continue;
                };
                let Some(refusal) = el.refusal() else {
                    out.insert(
                        s.contact_number.clone(),
                        Resolved::Id(el.contact_id.clone(), Origin::Created),
                    );
                    continue;
                };
                let errors = refusal.message().to_owned();
                if matches!(refusal, Refusal::DuplicateContactNumber(_)) {
                    // Ours from an earlier, unconfirmed attempt (or archived): adopt it.
                    let r = match client
                        .call(
                            Method::GET,
                            &format!("/Contacts/{}", s.contact_number),
                            &[],
                            None,
                        )
                        .await
                    {
                        Ok(v) => v
                            .contacts
                            .first()
                            .filter(|c| !c.contact_id.is_empty())
                            .map(|c| Resolved::Id(c.contact_id.clone(), Origin::Found))
                            .unwrap_or(Resolved::Refused(errors.clone())),
                        Err(e) if e.is_transient() => Resolved::Transient(e.to_string()),
                        Err(e) => Resolved::Refused(format!("{errors} ({e})")),
                    };
                    out.insert(s.contact_number.clone(), r);
                } else if matches!(refusal, Refusal::DuplicateContactName(_)) && attempt == 0 {
                    let mut s2 = s.clone();
                    s2.name = disambiguated(s);
                    retry.push(s2);
                } else {
                    out.insert(s.contact_number.clone(), Resolved::Refused(errors));
                }
            }
        }
        if retry.is_empty() {
            break;
        }
        round = retry;
    }
    let puts: Vec<_> = out
        .iter()
        .filter_map(|(number, r)| match r {
            // Only new knowledge is written; cache hits are already there.
            Resolved::Id(id, _) if !cached_ids.contains(number) => {
                let key = cache_key(&tenant, store_of.get(number)?, identities.get(number)?);
                let (cache, id) = (cache.clone(), id.clone());
                Some(async move {
                    let _ = cache.put(key, id.into_bytes().into()).await;
                })
            }
            _ => None,
        })
        .collect();
    futures::stream::iter(puts)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let releases: Vec<_> = claims.iter().map(|k| cache.delete(k)).collect();
    futures::future::join_all(releases).await;
    // The contacts another worker is creating: by now usually in the cache.
    let waited: Vec<_> = waits
        .into_iter()
        .map(|(number, key)| async move { (number, wait_for(cache, &key).await) })
        .collect();
    for (number, r) in futures::future::join_all(waited).await {
        out.insert(number, r);
    }
    out
}

/// How long a claim on creating a contact lasts: a claim older than this was left by a worker
/// that stopped mid-way, and may be taken over.
const CLAIM_STALE: Duration = Duration::from_secs(30);
/// How long a worker waits for another's creation before trying again later.
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting worker looks at the cache.
const CLAIM_POLL: Duration = Duration::from_millis(50);

enum Claim {
    /// This worker creates the contact; the claim (this key) is released after.
    Ours(String),
    /// Another worker is creating it.
    Theirs,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Claims the creation of the contact cached under `key` (`<key>.creating`, holding when it
/// was claimed), by create-if-absent in the CONTACTS bucket; a stale claim is taken over by
/// compare-and-set. Store trouble lets this worker go ahead, as before claims (Xero's "already
/// exists" and the lookup behind it still keep the contact single).
async fn claim(cache: &kv::Store, key: &str) -> Claim {
    use async_nats::jetstream::kv::CreateErrorKind;
    let claim_key = format!("{key}.creating");
    let now = now_ms();
    match cache.create(&claim_key, now.to_string().into()).await {
        Ok(_) => Claim::Ours(claim_key),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
            let Ok(Some(entry)) = cache.entry(&claim_key).await else {
                return Claim::Ours(claim_key);
            };
            let at: u64 = String::from_utf8_lossy(&entry.value).parse().unwrap_or(0);
            if now.saturating_sub(at) < CLAIM_STALE.as_millis() as u64 {
                return Claim::Theirs;
            }
            match cache
                .update(&claim_key, now.to_string().into(), entry.revision)
                .await
            {
                Ok(_) => Claim::Ours(claim_key),
                Err(_) => Claim::Theirs,
            }
        }
        Err(_) => Claim::Ours(claim_key),
    }
}

/// Waits for another worker's creation of the contact cached under `key`: its ContactID, or
/// `Transient` (tried again later) if the claim is released without one or the wait runs out.
async fn wait_for(cache: &kv::Store, key: &str) -> Resolved {
    let claim_key = format!("{key}.creating");
    let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
    loop {
        if let Ok(Some(v)) = cache.get(key).await
            && !v.is_empty()
        {
            metrics::counter!(crate::metrics_names::CONTACT_WAITS, "outcome" => "found")
                .increment(1);
            return Resolved::Id(cached_id(&v), Origin::Cached);
        }
        let released = matches!(cache.get(&claim_key).await, Ok(None));
        if released || tokio::time::Instant::now() >= deadline {
            // Look once more: the winner writes the cache before it releases the claim.
            if let Ok(Some(v)) = cache.get(key).await
                && !v.is_empty()
            {
                return Resolved::Id(cached_id(&v), Origin::Cached);
            }
            metrics::counter!(crate::metrics_names::CONTACT_WAITS, "outcome" => "retry")
                .increment(1);
            return Resolved::Transient(
                "another worker was creating this contact and did not finish; tried again later"
                    .into(),
            );
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
}
