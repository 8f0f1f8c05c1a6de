//! Xero-style webhooks out: thin INVOICE, CONTACT and CREDITNOTE events, signed with
//! `x-xero-signature` = base64(HMAC-SHA256(key, body)), after an intent-to-receive handshake.

use crate::App;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Event category (Xero's `eventCategory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Invoice,
    Contact,
    CreditNote,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Invoice => "INVOICE",
            Category::Contact => "CONTACT",
            Category::CreditNote => "CREDITNOTE",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Category::Invoice => "Invoices",
            Category::Contact => "Contacts",
            Category::CreditNote => "CreditNotes",
        }
    }
}

/// Event type (Xero's `eventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Update,
}

/// A change waiting to be delivered.
#[derive(Debug, Clone)]
pub struct Event {
    pub tenant: Uuid,
    pub category: Category,
    pub kind: EventKind,
    pub resource_id: Uuid,
    /// `{Type, Status}` for credit notes.
    pub data: Option<Value>,
    pub at: chrono::DateTime<Utc>,
}

/// Signs a body the way Xero does.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>, signature: &str) -> Option<u16> {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-xero-signature", signature)
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Runs the intent-to-receive handshake: a correctly signed request must get 200, a badly
/// signed one 401.
pub async fn intent_to_receive(client: &reqwest::Client, url: &str, key: &str) -> bool {
    let body = |entropy: &str| {
        json!({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": entropy})
            .to_string()
            .into_bytes()
    };
    let good = body(&Uuid::new_v4().simple().to_string());
    let good_sig = sign(key, &good);
    let bad = body(&Uuid::new_v4().simple().to_string());
    let bad_sig = sign("not-the-key", &bad);
    let a = post(client, url, good, &good_sig).await;
    let b = post(client, url, bad, &bad_sig).await;
    a == Some(200) && b == Some(401)
}

/// Delivers events in order, retrying with backoff; the handshake runs before the first batch.
pub async fn worker(
    app: Arc<App>,
    url: String,
    key: String,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "Webhook client could not be built.");
            return;
        }
    };
    let mut queue: VecDeque<Event> = VecDeque::new();
    let mut sequence: i64 = 0;
    let mut itr_ok = false;
    let mut failures: u32 = 0;
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(e) => queue.push_back(e),
                None => return,
            }
        }
        while let Ok(e) = rx.try_recv() {
            queue.push_back(e);
        }
        if !itr_ok {
            itr_ok = intent_to_receive(&client, &url, &key).await;
            app.counters.lock().unwrap().webhook_itr_passed = Some(itr_ok);
            if !itr_ok {
                tracing::warn!(url = %url, "Webhook intent-to-receive failed; will retry.");
            }
        }
        if itr_ok {
            let batch: Vec<Event> = queue.iter().take(50).cloned().collect();
            let first = sequence + 1;
            let events: Vec<Value> = batch
                .iter()
                .map(|e| {
                    let mut v = json!({
                        "resourceUrl": format!("https://api.xero.com/api.xro/2.0/{}/{}", e.category.path(), e.resource_id),
                        "resourceId": e.resource_id,
                        "eventDateUtc": e.at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                        "eventType": match e.kind { EventKind::Create => "CREATE", EventKind::Update => "UPDATE" },
                        "eventCategory": e.category.name(),
                        "tenantId": e.tenant,
                        "tenantType": "ORGANISATION",
                    });
                    if let Some(d) = &e.data {
                        v["data"] = d.clone();
                    }
                    v
                })
                .collect();
            let body = json!({
                "events": events,
                "firstEventSequence": first,
                "lastEventSequence": first + batch.len() as i64 - 1,
                "entropy": Uuid::new_v4().simple().to_string(),
            })
            .to_string()
            .into_bytes();
            let sig = sign(&key, &body);
            if post(&client, &url, body, &sig).await == Some(200) {
                sequence += batch.len() as i64;
                queue.drain(..batch.len());
                failures = 0;
                app.counters.lock().unwrap().webhooks_delivered += batch.len() as u64;
                continue;
            }
            app.counters.lock().unwrap().webhook_failures += 1;
        }
        failures += 1;
        let base = Duration::from_secs(5u64.saturating_mul(1 << failures.min(8)));
        let wait = app
            .settings
            .lock()
            .unwrap()
            .scaled(base)
            .max(Duration::from_millis(20));
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    }
}
