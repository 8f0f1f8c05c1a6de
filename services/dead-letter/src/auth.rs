//! Bearer tokens in two roles, viewer and operator, optionally limited to stores.

use crate::api::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read, with customer data masked.
    Viewer,
    /// Read everything and act: replay, fix, discard, assign.
    Operator,
}

/// One configured token.
#[derive(Clone)]
pub struct Token {
    role: Role,
    secret: SecretString,
    stores: Vec<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("role", &self.role)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A token; empty `stores` means every store.
    pub fn new(role: Role, secret: SecretString, stores: Vec<String>) -> Self {
        Self {
            role,
            secret,
            stores,
        }
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The stores it is limited to (empty: all).
    pub fn stores(&self) -> &[String] {
        &self.stores
    }
}

/// Every configured token.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Arc<Vec<Token>>);

impl Tokens {
    /// The set.
    pub fn new(tokens: Vec<Token>) -> Self {
        Self(Arc::new(tokens))
    }

    /// True when none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller presenting `secret`, if any token matches (compared in constant time).
    pub fn caller(&self, secret: &str) -> Option<Caller> {
        let mut found = None;
        for t in self.0.iter() {
            if bool::from(t.secret.expose_secret().as_bytes().ct_eq(secret.as_bytes())) {
                found = Some(Caller {
                    role: t.role,
                    stores: t.stores.clone(),
                    name: format!("{:?}#{}", t.role, short_hash(secret)).to_lowercase(),
                });
            }
        }
        found
    }
}

/// Sessions of the operator page: a cookie `<fingerprint>.<expiry>.<mac>` that names a token
/// by a fingerprint (never the token) and is signed with a key derived from every configured
/// token, so every replica accepts it and changing the tokens ends every session.
impl Tokens {
    fn key(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"ledgerline dead-letter sessions\n");
        for t in self.0.iter() {
            h.update(t.secret.expose_secret().as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_vec()
    }

    fn mac(&self, parts: &[&str]) -> String {
        use hmac::Mac;
        let mut m =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key()).expect("any key length");
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"|");
        }
        hex(&m.finalize().into_bytes())
    }

    /// A session for the token `secret`, valid until `expires` (unix seconds); `None` if no
    /// token matches.
    pub fn session(&self, secret: &str, expires: i64) -> Option<String> {
        self.caller(secret)?;
        let fp = fingerprint(secret);
        let exp = expires.to_string();
        let mac = self.mac(&["session", &fp, &exp]);
        Some(format!("{fp}.{exp}.{mac}"))
    }

    /// The caller of a session cookie, if it is genuine, unexpired at `now`, and its token is
    /// still configured.
    pub fn session_caller(&self, cookie: &str, now: i64) -> Option<Caller> {
        let mut parts = cookie.splitn(3, '.');
        let (fp, exp, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expected = self.mac(&["session", fp, exp]);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        if exp.parse::<i64>().ok()? <= now {
            return None;
        }
        let t = self
            .0
            .iter()
            .find(|t| fingerprint(t.secret.expose_secret()) == fp)?;
        self.caller(t.secret.expose_secret())
    }

    /// The CSRF token of a session: every form and script write carries it.
    pub fn csrf(&self, cookie: &str) -> String {
        self.mac(&["csrf", cookie])[..32].to_owned()
    }

    /// Whether `token` is `cookie`'s CSRF token (compared in constant time).
    pub fn csrf_ok(&self, cookie: &str, token: &str) -> bool {
        bool::from(self.csrf(cookie).as_bytes().ct_eq(token.as_bytes()))
    }
}

fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(format!("fingerprint|{secret}").as_bytes())[..8])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn short_hash(secret: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    d[..3].iter().map(|b| format!("{b:02x}")).collect()
}

/// Who is calling, from the `Authorization: Bearer` header.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their role.
    pub role: Role,
    /// Stores they are limited to (empty: all).
    pub stores: Vec<String>,
    /// How the audit trail names them (`operator#1a2b3c`, never the token).
    pub name: String,
}

impl Caller {
    /// Whether they may see `store`'s entries.
    pub fn sees(&self, store: &str) -> bool {
        self.stores.is_empty() || self.stores.iter().any(|s| s == store)
    }

    /// Customer data is masked for viewers.
    pub fn masked(&self) -> bool {
        self.role == Role::Viewer
    }

    /// 403 unless an operator.
    pub fn operator(&self) -> Result<(), ApiError> {
        if self.role == Role::Operator {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an operator token"))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Tokens: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = <Tokens as axum::extract::FromRef<S>>::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is needed"))?;
        let secret = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
        tokens
            .caller(secret.trim())
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

/// A fresh operator token (printed once at start when none is configured).
pub fn one_time_token() -> String {
    format!(
        "dlop_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_caller_and_limits_their_stores() {
        let tokens = Tokens::new(vec![
            Token::new(
                Role::Viewer,
                "viewer-token-0123456".to_owned().into(),
                vec!["main".into()],
            ),
            Token::new(
                Role::Operator,
                "operator-token-0123".to_owned().into(),
                vec![],
            ),
        ]);
        let v = tokens.caller("viewer-token-0123456").unwrap();
        assert!(v.masked() && v.sees("main") && !v.sees("outlet"));
        assert!(v.operator().is_err());
        assert!(!v.name.contains("token"), "the audit name is not the token");
        let o = tokens.caller("operator-token-0123").unwrap();
        assert!(o.operator().is_ok() && o.sees("outlet"));
        assert!(tokens.caller("nope").is_none());
        assert!(one_time_token().len() > 60);
    }

    #[test]
    fn a_session_names_its_token_by_fingerprint_and_ends_with_its_expiry_or_its_token() {
        let tokens = Tokens::new(vec![Token::new(
            Role::Viewer,
            "viewer-token-0123456".to_owned().into(),
            vec!["main".into()],
        )]);
        assert!(tokens.session("nope", 2_000).is_none());
        let s = tokens.session("viewer-token-0123456", 2_000).unwrap();
        assert!(
            !s.contains("viewer-token"),
            "the cookie is not the token: {s}"
        );
        let c = tokens.session_caller(&s, 1_000).unwrap();
        assert_eq!(
            (c.role, c.stores.clone()),
            (Role::Viewer, vec!["main".to_owned()])
        );
        assert!(tokens.session_caller(&s, 2_000).is_none(), "expired");
        let forged = s.replacen("2000", "9000", 1);
        assert!(
            tokens.session_caller(&forged, 1_000).is_none(),
            "expiry is signed"
        );
        // Another token set (a rotation): every session ends.
        let rotated = Tokens::new(vec![
            Token::new(
                Role::Viewer,
                "viewer-token-0123456".to_owned().into(),
                vec![],
            ),
            Token::new(Role::Operator, "another".to_owned().into(), vec![]),
        ]);
        assert!(rotated.session_caller(&s, 1_000).is_none());
        let csrf = tokens.csrf(&s);
        assert!(tokens.csrf_ok(&s, &csrf));
        assert!(!tokens.csrf_ok(&s, "0000"));
        assert!(!tokens.csrf_ok(
            &tokens.session("viewer-token-0123456", 3_000).unwrap(),
            &csrf
        ));
    }
}
