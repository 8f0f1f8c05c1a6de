//! Standard Webhooks v1 signing and verification (HMAC-SHA256, `whsec_` secrets).
//!
//! The signed bytes are `<webhook-id>.<webhook-timestamp>.<raw body>`; the signature header is a
//! space-separated list of `version,base64` entries, of which only `v1` entries are compared
//! (several are present while keys rotate). Spec: `../shared/reference/webhooks/standard-webhooks.md`.
//!
//! The receiving side is built so that an unverified payload cannot be handed on by mistake:
//! [`Unverified`] holds what arrived, and the only way to get a [`Verified`] (whose constructor is
//! private to this module) is [`Unverified::verify`]. Publishing code should accept only
//! `Verified`.
//!
//! ```
//! use ledgerline_platform::standard_webhooks::{sign, Secret, Unverified, Verifier};
//! let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
//! let body = bytes::Bytes::from_static(br#"{"test": 2432232314}"#);
//! let sig = sign(&secret, "msg_1", 1_614_265_330, &body);
//! let verifier = Verifier::new(vec![secret]);
//! let unverified = Unverified::new(Some("msg_1"), Some("1614265330"), Some(&sig), body);
//! let verified = unverified.verify(&verifier, 1_614_265_400).unwrap();
//! assert_eq!(verified.id(), "msg_1");
//! ```

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the event id (identical on every retry of one event).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the unix seconds of this delivery attempt.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The tolerance every reference library uses, either way, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// Prefix of a symmetric secret as shown to users.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret string was refused. Never contains the secret itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The part after `whsec_` is not standard base64.
    #[error("webhook secret is not valid base64")]
    NotBase64,
    /// The decoded key is empty.
    #[error("webhook secret is empty")]
    Empty,
}

/// A symmetric signing key, parsed from `whsec_<base64>` (the bare base64 is accepted too, as
/// the reference libraries do). `Debug` is redacted so it can sit in config structs safely.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// Parses `whsec_<base64>` or bare base64.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(&key)
    }

    /// Wraps raw key bytes (the spec recommends 24 to 64 random bytes).
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key: key.to_vec() })
    }

    /// The `whsec_<base64>` text form. Named so call sites show they handle the secret itself.
    pub fn expose_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // new_from_slice only fails for fixed-size-key MACs; HMAC takes any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Signs one delivery: returns `v1,<base64>` for `<msg_id>.<timestamp>.<body>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = secret.mac(msg_id, &timestamp.to_string(), body);
    format!("v1,{}", STANDARD.encode(mac))
}

/// The full `webhook-signature` value for several live secrets (rotation): one `v1` entry each,
/// space-separated, in the order given.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which side of the tolerance window a timestamp fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// Older than `now - tolerance`: a replay or a very late retry.
    TooOld,
    /// Later than `now + tolerance`: the sender's clock is ahead.
    InFuture,
}

/// Why a delivery was refused. Messages name headers but never echo their values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is absent (or not visible ASCII).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("malformed webhook-timestamp")]
    MalformedTimestamp,
    /// The timestamp is outside the tolerance window.
    #[error("webhook-timestamp outside the tolerance window ({0:?})")]
    TimestampOutOfWindow(Skew),
    /// No `v1` entry matches any live secret.
    #[error("no matching signature")]
    InvalidSignature,
    /// The verifier has no secret configured, so nothing can verify.
    #[error("no webhook secret configured")]
    NoSecrets,
}

/// Verifies deliveries against every live secret of one endpoint (several during rotation).
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance_secs: i64,
}

impl Verifier {
    /// A verifier with the default ±300 s tolerance.
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self {
            secrets,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Sets the tolerance either way, in seconds (a timestamp exactly at the edge is accepted).
    pub fn with_tolerance_secs(mut self, secs: i64) -> Self {
        self.tolerance_secs = secs.max(0);
        self
    }

    /// The tolerance either way, in seconds.
    pub fn tolerance_secs(&self) -> i64 {
        self.tolerance_secs
    }

    /// How many secrets are live.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Checks header values against the raw body at unix time `now`; returns the parsed timestamp.
    /// Prefer [`Unverified::verify`], which also hands back the proof type.
    pub fn check(
        &self,
        msg_id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, VerifyError> {
        let msg_id = msg_id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
        let ts_text = timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
        let signature = signature.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
        let ts = parse_timestamp(ts_text)?;
        if now.saturating_sub(ts) > self.tolerance_secs {
            return Err(VerifyError::TimestampOutOfWindow(Skew::TooOld));
        }
        if ts.saturating_sub(now) > self.tolerance_secs {
            return Err(VerifyError::TimestampOutOfWindow(Skew::InFuture));
        }
        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecrets);
        }
        let candidates: Vec<Vec<u8>> = signature
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        // Every secret is tried against every entry, without an early exit, so timing says
        // nothing about which key or entry matched.
        let mut matched = subtle::Choice::from(0u8);
        for secret in &self.secrets {
            let expected = secret.mac(msg_id, ts_text, body);
            for candidate in &candidates {
                matched |= expected.as_slice().ct_eq(candidate.as_slice());
            }
        }
        if bool::from(matched) {
            Ok(ts)
        } else {
            Err(VerifyError::InvalidSignature)
        }
    }
}

fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

/// A delivery as received: header values (absent = `None`) and the raw body, not yet trusted.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
    /// The exact bytes received; never re-serialised before verifying.
    pub body: Bytes,
}

impl<'a> Unverified<'a> {
    /// From header values already extracted.
    pub fn new(
        id: Option<&'a str>,
        timestamp: Option<&'a str>,
        signature: Option<&'a str>,
        body: Bytes,
    ) -> Self {
        Self {
            id,
            timestamp,
            signature,
            body,
        }
    }

    /// From an HTTP header map (names are case-insensitive there); a non-ASCII value counts as
    /// missing.
    pub fn from_headers(headers: &'a HeaderMap, body: Bytes) -> Self {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self::new(
            get(HEADER_ID),
            get(HEADER_TIMESTAMP),
            get(HEADER_SIGNATURE),
            body,
        )
    }

    /// Verifies at unix time `now` and, on success, returns the proof that it was verified.
    pub fn verify(self, verifier: &Verifier, now: i64) -> Result<Verified, VerifyError> {
        let timestamp = verifier.check(self.id, self.timestamp, self.signature, &self.body, now)?;
        let id = self
            .id
            .ok_or(VerifyError::MissingHeader(HEADER_ID))?
            .to_owned();
        Ok(Verified {
            id,
            timestamp,
            body: self.body,
        })
    }
}

/// A delivery whose signature matched a live secret within the tolerance window. Only
/// [`Unverified::verify`] can make one.
#[derive(Debug, Clone)]
pub struct Verified {
    id: String,
    timestamp: i64,
    body: Bytes,
}

impl Verified {
    /// The `webhook-id` (covered by the signature).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `webhook-timestamp` in unix seconds (covered by the signature).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The raw body exactly as signed.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Splits into `(id, timestamp, body)`.
    pub fn into_parts(self) -> (String, i64, Bytes) {
        (self.id, self.timestamp, self.body)
    }
}

/// The current unix time in seconds, for `verify`'s `now`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/webhooks/standard-webhooks-test-vectors.json"
    ));
    const PYTHON_FIXTURES: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/standard_webhooks_python.json"
    ));
    const CLARITY_EXAMPLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/clarity/sales_order.created.json"
    ));

    #[derive(Deserialize)]
    struct Vectors {
        tolerance_seconds: i64,
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        secret: String,
        webhook_id: Option<String>,
        webhook_timestamp: Option<String>,
        webhook_signature: Option<String>,
        body: String,
        now: i64,
        expect: String,
    }

    fn expectation(result: &Result<i64, VerifyError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(VerifyError::InvalidSignature) => "invalid_signature",
            Err(VerifyError::TimestampOutOfWindow(Skew::TooOld)) => "timestamp_too_old",
            Err(VerifyError::TimestampOutOfWindow(Skew::InFuture)) => "timestamp_in_future",
            Err(VerifyError::MalformedTimestamp) => "invalid_timestamp",
            Err(VerifyError::MissingHeader(_)) => "missing_header",
            Err(VerifyError::NoSecrets) => "no_secrets",
        }
    }

    #[test]
    fn every_shared_vector_passes() {
        let v: Vectors = serde_json::from_str(VECTORS).unwrap();
        assert_eq!(v.tolerance_seconds, DEFAULT_TOLERANCE_SECS);
        assert!(v.vectors.len() >= 15);
        for t in &v.vectors {
            let verifier = Verifier::new(vec![Secret::parse(&t.secret).unwrap()]);
            let got = verifier.check(
                t.webhook_id.as_deref(),
                t.webhook_timestamp.as_deref(),
                t.webhook_signature.as_deref(),
                t.body.as_bytes(),
                t.now,
            );
            assert_eq!(expectation(&got), t.expect, "vector {}", t.name);
            // Signing reproduces the first signature of every valid single-key vector.
            if t.expect == "ok" {
                let ts: i64 = t.webhook_timestamp.as_deref().unwrap().parse().unwrap();
                let ours = sign(
                    &Secret::parse(&t.secret).unwrap(),
                    t.webhook_id.as_deref().unwrap(),
                    ts,
                    t.body.as_bytes(),
                );
                assert!(
                    t.webhook_signature
                        .as_deref()
                        .unwrap()
                        .split(' ')
                        .any(|s| s == ours),
                    "vector {}",
                    t.name
                );
            }
        }
    }

    #[derive(Deserialize)]
    struct PyFixtures {
        cases: Vec<PyCase>,
    }

    #[derive(Deserialize)]
    struct PyCase {
        name: String,
        secret: String,
        msg_id: String,
        timestamp: i64,
        body: String,
        signature: String,
    }

    #[test]
    fn official_python_library_signatures_verify() {
        let f: PyFixtures = serde_json::from_str(PYTHON_FIXTURES).unwrap();
        assert!(!f.cases.is_empty());
        for c in &f.cases {
            let secret = Secret::parse(&c.secret).unwrap();
            assert_eq!(
                sign(&secret, &c.msg_id, c.timestamp, c.body.as_bytes()),
                c.signature,
                "case {}",
                c.name
            );
            let ts = c.timestamp.to_string();
            let u = Unverified::new(
                Some(&c.msg_id),
                Some(&ts),
                Some(&c.signature),
                Bytes::from(c.body.clone()),
            );
            let v = u
                .verify(&Verifier::new(vec![secret]), c.timestamp + 10)
                .unwrap();
            assert_eq!(v.id(), c.msg_id, "case {}", c.name);
        }
    }

    fn key(byte: u8) -> Secret {
        Secret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn rotation_accepts_any_live_key_and_either_header_entry() {
        let (old, new) = (key(1), key(2));
        let body = Bytes::from_static(b"{}");
        let both = signature_header(&[new.clone(), old.clone()], "evt_1", 1000, &body);
        assert_eq!(both.split(' ').count(), 2);
        for verifier in [
            Verifier::new(vec![old.clone()]),
            Verifier::new(vec![new.clone()]),
            Verifier::new(vec![new.clone(), old.clone()]),
        ] {
            assert_eq!(
                verifier.check(Some("evt_1"), Some("1000"), Some(&both), &body, 1000),
                Ok(1000)
            );
        }
        // A sender still on the old key only, to a receiver that holds old and new.
        let only_old = sign(&old, "evt_1", 1000, &body);
        let both_live = Verifier::new(vec![new.clone(), old]);
        assert_eq!(
            both_live.check(Some("evt_1"), Some("1000"), Some(&only_old), &body, 1000),
            Ok(1000)
        );
        // Once the old key is retired, its signature no longer verifies.
        let retired = Verifier::new(vec![new]);
        assert_eq!(
            retired.check(Some("evt_1"), Some("1000"), Some(&only_old), &body, 1000),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            Verifier::new(vec![]).check(Some("evt_1"), Some("1000"), Some(&only_old), &body, 1000),
            Err(VerifyError::NoSecrets)
        );
    }

    #[test]
    fn tolerance_is_inclusive_and_configurable() {
        let s = key(3);
        let sig = sign(&s, "evt_1", 10_000, b"x");
        let check =
            |v: &Verifier, now| v.check(Some("evt_1"), Some("10000"), Some(&sig), b"x", now);
        let default = Verifier::new(vec![s.clone()]);
        assert_eq!(check(&default, 10_300), Ok(10_000));
        assert_eq!(check(&default, 9_700), Ok(10_000));
        assert_eq!(
            check(&default, 10_301),
            Err(VerifyError::TimestampOutOfWindow(Skew::TooOld))
        );
        assert_eq!(
            check(&default, 9_699),
            Err(VerifyError::TimestampOutOfWindow(Skew::InFuture))
        );
        let narrow = Verifier::new(vec![s]).with_tolerance_secs(5);
        assert_eq!(check(&narrow, 10_005), Ok(10_000));
        assert_eq!(
            check(&narrow, 10_006),
            Err(VerifyError::TimestampOutOfWindow(Skew::TooOld))
        );
        for bad in ["", "-5", "+5", "1e3", "12 ", "99999999999999999999"] {
            assert_eq!(
                default.check(Some("evt_1"), Some(bad), Some(&sig), b"x", 10_000),
                Err(VerifyError::MalformedTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn clarity_example_round_trips_through_headers() {
        let secret: Secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            .parse()
            .unwrap();
        let body = Bytes::from_static(CLARITY_EXAMPLE.as_bytes());
        let id = "evt_01JD7Q0K4V9S3T6XWZ2M8N5B1C";
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, id.parse().unwrap());
        headers.insert(HEADER_TIMESTAMP, "1763630102".parse().unwrap());
        headers.insert(
            HEADER_SIGNATURE,
            sign(&secret, id, 1_763_630_102, &body).parse().unwrap(),
        );
        let verifier = Verifier::new(vec![secret]);
        let verified = Unverified::from_headers(&headers, body.clone())
            .verify(&verifier, 1_763_630_110)
            .unwrap();
        assert_eq!((verified.id(), verified.timestamp()), (id, 1_763_630_102));
        assert_eq!(verified.body(), &body);
        // One changed byte anywhere in the body breaks it.
        let mut tampered = body.to_vec();
        let pos = tampered.iter().position(|&b| b == b'7').unwrap();
        tampered[pos] = b'8';
        let err = Unverified::from_headers(&headers, Bytes::from(tampered))
            .verify(&verifier, 1_763_630_110);
        assert_eq!(err.unwrap_err(), VerifyError::InvalidSignature);
        headers.remove(HEADER_SIGNATURE);
        let err = Unverified::from_headers(&headers, body).verify(&verifier, 1_763_630_110);
        assert_eq!(
            err.unwrap_err(),
            VerifyError::MissingHeader(HEADER_SIGNATURE)
        );
    }

    #[test]
    fn secrets_parse_and_never_print() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose_whsec(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(Secret::parse("whsec_").unwrap_err(), SecretError::Empty);
        let v = Verifier::new(vec![s]);
        assert!(!format!("{v:?}").contains("MfKQ"));
    }
}
