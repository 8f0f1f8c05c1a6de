//! `POST /webhooks/xero`: Xero's webhooks. The signature `x-xero-signature` is the base64
//! HMAC-SHA256 of the raw body under the webhook key, compared in constant time. A correctly
//! signed delivery is stored in XERO_HOOKS before the 200 (the intent-to-receive handshake is
//! one with no events); a badly signed one gets 401. Both answers have an empty body, as Xero
//! expects, and come well within its 5 s.

use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ledgerline_contract::{JSON_CONTENT_TYPE, subjects};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest delivery accepted (Xero batches events; a delivery is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Whether `signature` is the base64 HMAC-SHA256 of `body` under `key`.
pub fn signed(key: &[u8], body: &[u8], signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
}

/// The handler.
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(key) = state.webhook_key.as_ref() else {
        metrics::counter!("recon_xero_webhooks_total", "outcome" => "no_key").increment(1);
        return StatusCode::UNAUTHORIZED;
    };
    let signature = headers
        .get("x-xero-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signed(key.expose_secret().as_bytes(), &body, signature) {
        metrics::counter!("recon_xero_webhooks_total", "outcome" => "bad_signature").increment(1);
        return StatusCode::UNAUTHORIZED;
    }
    // Xero retries a delivery with the same body: its hash is the message id.
    let id = format!(
        "xh-{}",
        &ledgerline_xero_client::hex(&Sha256::digest(&body))[..40]
    );
    match state
        .publisher
        .publish(
            subjects::XERO_HOOK_DELIVERY.to_owned(),
            &id,
            JSON_CONTENT_TYPE,
            "xero.webhook.v1",
            async_nats::HeaderMap::new(),
            body,
        )
        .await
    {
        Ok(_) => {
            metrics::counter!("recon_xero_webhooks_total", "outcome" => "stored").increment(1);
            StatusCode::OK
        }
        Err(e) => {
            tracing::warn!(error = %e, "A Xero webhook delivery could not be stored; Xero retries it.");
            metrics::counter!("recon_xero_webhooks_total", "outcome" => "unavailable").increment(1);
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_base64_hmac_sha256_of_the_body() {
        let body = br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"x"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(body);
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert!(signed(b"key", body, &good));
        assert!(!signed(b"other", body, &good));
        assert!(!signed(b"key", b"{}", &good));
        assert!(!signed(b"key", body, ""));
    }
}
