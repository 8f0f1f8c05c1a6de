//! Customer → Xero contact: ContactNumber is the stable key (store + identity key); match by it,
//! else by email when exactly one active contact has it, never by name alone. A new contact
//! whose name is taken gets the email in brackets. Matches are cached in the CONTACTS bucket.
//!
//! - [`Desk`]: one per tenant; both paths' unknown customers are resolved in shared rounds.
//! - `round`: one round (claim, search, create, cache); `claim`: single-flight across replicas.

mod claim;
mod desk;
mod round;

pub use desk::{Desk, Path};

use async_nats::jetstream::kv;
use futures::StreamExt;
use ledgerline_contract::v1::{Customer, Order};
use ledgerline_mapping::{FieldTarget, GuestPolicy, Mapping};
use ledgerline_xero_client::hex;
use ledgerline_xero_client::model::send;
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// Reads `keys` side by side (64 at a time), in order.
pub(crate) async fn read_all(
    cache: &kv::Store,
    keys: Vec<String>,
) -> Vec<Result<Option<bytes::Bytes>, String>> {
    let reads: Vec<_> = keys
        .into_iter()
        .map(|k| async move { cache.get(k).await.map_err(|e| e.to_string()) })
        .collect();
    futures::stream::iter(reads).buffered(64).collect().await
}

/// A short hash of what a spec sends: a cached contact's details, to tell whether an update is
/// needed.
pub fn details_hash(s: &ContactSpec) -> String {
    hex(&Sha256::digest(serde_json::to_vec(s).unwrap_or_default()))[..16].to_owned()
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
