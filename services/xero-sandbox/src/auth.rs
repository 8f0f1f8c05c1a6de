//! Identity: `/connect/token`, the consent shortcut, `/connections`, and bearer checks.

use crate::App;
use crate::resp::{Resp, problem};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// How a token was obtained; it decides whether `xero-tenant-id` may be omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantKind {
    /// Custom connection: bound to one organisation, header optional.
    ClientCredentials,
    /// Authorization code (and refreshes of it): header required.
    AuthorizationCode,
}

/// An issued access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub kind: GrantKind,
    pub tenants: Vec<Uuid>,
    pub auth_event_id: Uuid,
    pub expires: DateTime<Utc>,
    pub scope: String,
}

/// An issued refresh token. Once rotated it keeps working until `grace_until`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub tenants: Vec<Uuid>,
    pub auth_event_id: Uuid,
    pub scope: String,
    pub grace_until: Option<DateTime<Utc>>,
    /// The token that replaced this one.
    pub replaced_by: Option<String>,
    /// Unused refresh tokens expire after 60 days (scaled).
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
}

/// A consent-shortcut authorization code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCode {
    pub tenants: Vec<Uuid>,
    pub redirect_uri: String,
    pub scope: String,
    pub expires: DateTime<Utc>,
}

/// All identity state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthState {
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, AuthCode>,
}

/// Why a bearer check failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable token: 401 AuthorizationUnsuccessful.
    #[error("AuthorizationUnsuccessful")]
    Unauthorized,
    /// Token past its lifetime: 401 TokenExpired.
    #[error("TokenExpired: token expired at {0}")]
    Expired(String),
    /// Tenant unknown, not granted, or disconnected: 403.
    #[error("AuthenticationUnsuccessful")]
    Forbidden,
}

impl AuthError {
    /// The problem-JSON response Xero sends for this failure.
    pub fn response(&self) -> Resp {
        match self {
            AuthError::Forbidden => problem(StatusCode::FORBIDDEN, "Forbidden", &self.to_string()),
            _ => problem(StatusCode::UNAUTHORIZED, "Unauthorized", &self.to_string()),
        }
    }
}

fn random_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Every broad scope: what a token of a broad app gets when it asks for none.
pub const ALL_SCOPES: &str = "accounting.transactions accounting.contacts accounting.settings";
/// Every granular scope this sandbox serves: what a token of a granular app gets when it asks
/// for none.
pub const ALL_GRANULAR: &str =
    "accounting.invoices accounting.payments accounting.contacts accounting.settings";
/// Broad scopes a granular app is refused.
const BROAD_ONLY: &[&str] = &["accounting.transactions", "accounting.transactions.read"];

/// The scopes of a grant for `asked` on an app of `kind`: what it asked for (or everything it
/// may have), or `invalid_scope` for a broad scope on a granular app, as Xero answers apps made
/// from 2 March 2026.
pub fn grant_scope(kind: &str, asked: Option<&str>) -> Result<String, &'static str> {
    let granular = kind != "broad";
    match asked.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) if granular && a.split_whitespace().any(|s| BROAD_ONLY.contains(&s)) => {
            Err("invalid_scope")
        }
        Some(a) => Ok(a.to_owned()),
        None if granular => Ok(ALL_GRANULAR.into()),
        None => Ok(ALL_SCOPES.into()),
    }
}

/// Whether `scope` (space-separated, broad or granular) allows `method` on a resource (the first
/// path segment, lower-cased).
pub fn scope_allows(scope: &str, method: &axum::http::Method, resource: &str) -> bool {
    // Each resource's granular scope (FACTS.md §8), or the broad one it was under before.
    let family: &[&str] = match resource {
        "invoices" | "creditnotes" | "quotes" | "purchaseorders" | "repeatinginvoices"
        | "linkedtransactions" => &["accounting.transactions", "accounting.invoices"],
        "payments" | "batchpayments" | "overpayments" | "prepayments" => {
            &["accounting.transactions", "accounting.payments"]
        }
        "banktransactions" | "banktransfers" => {
            &["accounting.transactions", "accounting.banktransactions"]
        }
        "manualjournals" => &["accounting.transactions", "accounting.manualjournals"],
        "contacts" | "contactgroups" => &["accounting.contacts"],
        // Items moved under accounting.invoices; the spec still lists them under settings.
        "items" => &["accounting.settings", "accounting.invoices"],
        _ => &["accounting.settings"],
    };
    let read = method == axum::http::Method::GET;
    scope.split_whitespace().any(|granted| {
        family
            .iter()
            .any(|f| granted == *f || (read && granted.strip_suffix(".read") == Some(f)))
    })
}

/// Checks the bearer token and picks the tenant; returns (tenant id, granted scope).
pub fn authorize(app: &App, headers: &HeaderMap) -> Result<(Uuid, String), AuthError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .ok_or(AuthError::Unauthorized)?;
    let store = app.store.lock().unwrap();
    let at = store
        .auth
        .access
        .get(&token)
        .ok_or(AuthError::Unauthorized)?;
    if at.expires <= Utc::now() {
        return Err(AuthError::Expired(
            at.expires.format("%m/%d/%Y %H:%M:%S").to_string(),
        ));
    }
    let header = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let tenant = match header {
        Some(h) if !h.is_empty() => h.parse::<Uuid>().map_err(|_| AuthError::Forbidden)?,
        _ if at.kind == GrantKind::ClientCredentials => {
            *at.tenants.first().ok_or(AuthError::Forbidden)?
        }
        _ => return Err(AuthError::Forbidden),
    };
    if !at.tenants.contains(&tenant) {
        return Err(AuthError::Forbidden);
    }
    let t = store
        .tenants
        .iter()
        .find(|t| t.tenant_id == tenant)
        .ok_or(AuthError::Forbidden)?;
    if !t.connected {
        return Err(AuthError::Forbidden);
    }
    Ok((tenant, at.scope.clone()))
}

fn token_error(err: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": err })),
    )
        .into_response()
}

fn parse_form(body: &str) -> HashMap<String, String> {
    let uri: axum::http::Uri = match format!("/?{body}").parse() {
        Ok(u) => u,
        Err(_) => return HashMap::new(),
    };
    Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// `POST /connect/token`: client_credentials, authorization_code and refresh_token grants.
pub async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    let form = parse_form(&body);
    let (mut id, mut secret) = (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    );
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Ok(text) = String::from_utf8(raw)
        && let Some((i, s)) = text.split_once(':')
    {
        id = Some(i.to_string());
        secret = Some(s.to_string());
    }
    if id.as_deref() != Some(app.config.client_id.as_str())
        || secret.as_deref() != Some(app.config.client_secret.as_str())
    {
        return token_error("invalid_client");
    }
    let settings = app.settings.lock().unwrap().clone();
    let lifetime = settings.scaled_secs(settings.access_token_secs);
    let now = Utc::now();
    let expires = now + ChronoDuration::from_std(lifetime).unwrap_or_default();
    let expires_in = lifetime.as_secs_f64().ceil().max(1.0) as u64;
    let refresh_expiry =
        now + ChronoDuration::from_std(settings.scaled_secs(60 * 86_400)).unwrap_or_default();
    let mut store = app.store.lock().unwrap();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let mut reused = false;
    let (kind, tenants, auth_event_id, scope, refresh) = match grant {
        "client_credentials" => {
            let wanted = form.get("tenant_id").and_then(|t| t.parse::<Uuid>().ok());
            let tenant = match wanted {
                Some(t) if store.tenants.iter().any(|x| x.tenant_id == t) => t,
                Some(_) => return token_error("invalid_request"),
                None => match store.tenants.first() {
                    Some(t) => t.tenant_id,
                    None => return token_error("invalid_request"),
                },
            };
            let scope = match grant_scope(&settings.app_kind, form.get("scope").map(String::as_str))
            {
                Ok(s) => s,
                Err(e) => return token_error(e),
            };
            (
                GrantKind::ClientCredentials,
                vec![tenant],
                Uuid::new_v4(),
                scope,
                None,
            )
        }
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(c) = store.auth.codes.remove(&code) else {
                return token_error("invalid_grant");
            };
            if c.expires <= now {
                return token_error("invalid_grant");
            }
            if let Some(r) = form.get("redirect_uri")
                && *r != c.redirect_uri
            {
                return token_error("invalid_grant");
            }
            let rt = random_token();
            let event = Uuid::new_v4();
            store.auth.refresh.insert(
                rt.clone(),
                RefreshToken {
                    tenants: c.tenants.clone(),
                    auth_event_id: event,
                    scope: c.scope.clone(),
                    grace_until: None,
                    replaced_by: None,
                    expires: Some(refresh_expiry),
                },
            );
            (
                GrantKind::AuthorizationCode,
                c.tenants,
                event,
                c.scope,
                Some(rt),
            )
        }
        "refresh_token" => {
            let old = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(r) = store.auth.refresh.get(&old).cloned() else {
                return token_error("invalid_grant");
            };
            reused = r.replaced_by.is_some();
            if let Some(until) = r.grace_until.into_iter().chain(r.expires).min()
                && until <= now
            {
                store.auth.refresh.remove(&old);
                return token_error("invalid_grant");
            }
            // Rotation: the old token keeps working through the grace period and each use mints
            // a fresh token; the previous successor stays valid too, as on Xero.
            let rt = random_token();
            let grace = settings.scaled_secs(settings.refresh_grace_secs);
            if let Some(entry) = store.auth.refresh.get_mut(&old) {
                if entry.grace_until.is_none() {
                    entry.grace_until =
                        Some(now + ChronoDuration::from_std(grace).unwrap_or_default());
                }
                entry.replaced_by = Some(rt.clone());
            }
            store.auth.refresh.insert(
                rt.clone(),
                RefreshToken {
                    tenants: r.tenants.clone(),
                    auth_event_id: r.auth_event_id,
                    scope: r.scope.clone(),
                    grace_until: None,
                    replaced_by: None,
                    expires: Some(refresh_expiry),
                },
            );
            (
                GrantKind::AuthorizationCode,
                r.tenants,
                r.auth_event_id,
                r.scope,
                Some(rt),
            )
        }
        _ => return token_error("unsupported_grant_type"),
    };
    let access = random_token();
    store
        .auth
        .access
        .retain(|_, t| t.expires > now - ChronoDuration::hours(1));
    store.auth.access.insert(
        access.clone(),
        AccessToken {
            kind,
            tenants,
            auth_event_id,
            expires,
            scope: scope.clone(),
        },
    );
    let mut out = serde_json::json!({
        "access_token": access,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": scope,
    });
    if let Some(rt) = refresh {
        out["refresh_token"] = rt.into();
        out["id_token"] = random_token().into();
    }
    drop(store);
    let mut c = app.counters.lock().unwrap();
    *c.token_grants.entry(grant.to_owned()).or_default() += 1;
    c.refresh_reuses += u64::from(reused);
    drop(c);
    axum::Json(out).into_response()
}

/// `POST /connect/revocation`: forgets a refresh token (and so the grant).
pub async fn revoke(State(app): State<Arc<App>>, body: String) -> Response {
    let form = parse_form(&body);
    let Some(token) = form.get("token") else {
        return token_error("invalid_request");
    };
    let mut store = app.store.lock().unwrap();
    store.auth.refresh.remove(token);
    StatusCode::OK.into_response()
}

/// Query of the consent shortcut.
#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    redirect_uri: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// Sandbox extension: comma-separated tenant ids to connect (all tenants otherwise).
    #[serde(default)]
    tenants: Option<String>,
}

/// `GET /identity/authorize` (also `/identity/connect/authorize`): consents at once and
/// redirects back with a code valid for 5 minutes (scaled).
pub async fn authorize_redirect(
    State(app): State<Arc<App>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if q.client_id
        .as_deref()
        .is_some_and(|c| c != app.config.client_id)
    {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let (life, kind) = {
        let s = app.settings.lock().unwrap();
        (s.scaled_secs(300), s.app_kind.clone())
    };
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let asked = q.scope.as_deref().map(|s| {
        s.split_whitespace()
            .filter(|s| *s != "offline_access")
            .collect::<Vec<_>>()
            .join(" ")
    });
    if let Err(e) = grant_scope(&kind, asked.as_deref()) {
        // Xero sends the browser back with the error, as OAuth 2.0 says.
        let mut url = format!("{}{sep}error={e}", q.redirect_uri);
        if let Some(s) = &q.state {
            url.push_str(&format!("&state={s}"));
        }
        return Redirect::to(&url).into_response();
    }
    let mut store = app.store.lock().unwrap();
    for t in &mut store.tenants {
        t.connected = true;
    }
    let tenants: Vec<Uuid> = match &q.tenants {
        Some(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        None => store.tenants.iter().map(|t| t.tenant_id).collect(),
    };
    let code = random_token();
    store.auth.codes.insert(
        code.clone(),
        AuthCode {
            tenants,
            redirect_uri: q.redirect_uri.clone(),
            scope: q.scope.clone().unwrap_or_else(|| {
                format!(
                    "offline_access {}",
                    grant_scope(&kind, None).unwrap_or_default()
                )
            }),
            expires: Utc::now() + ChronoDuration::from_std(life).unwrap_or_default(),
        },
    );
    let mut url = format!("{}{sep}code={code}", q.redirect_uri);
    if let Some(s) = q.state {
        url.push_str(&format!("&state={s}"));
    }
    Redirect::to(&url).into_response()
}

fn bearer_only(app: &App, headers: &HeaderMap) -> Result<AccessToken, Resp> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| AuthError::Unauthorized.response())?;
    let store = app.store.lock().unwrap();
    let at = store
        .auth
        .access
        .get(token)
        .cloned()
        .ok_or_else(|| AuthError::Unauthorized.response())?;
    if at.expires <= Utc::now() {
        return Err(
            AuthError::Expired(at.expires.format("%m/%d/%Y %H:%M:%S").to_string()).response(),
        );
    }
    Ok(at)
}

/// `GET /connections`: the tenants this token reaches that are still connected.
pub async fn connections(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let at = match bearer_only(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let store = app.store.lock().unwrap();
    let filter = q.get("authEventId").and_then(|s| s.parse::<Uuid>().ok());
    if filter.is_some_and(|f| f != at.auth_event_id) {
        return axum::Json(serde_json::json!([])).into_response();
    }
    let list: Vec<_> = store
        .tenants
        .iter()
        .filter(|t| t.connected && at.tenants.contains(&t.tenant_id))
        .map(|t| {
            serde_json::json!({
                "id": t.connection_id,
                "authEventId": at.auth_event_id,
                "tenantId": t.tenant_id,
                "tenantType": "ORGANISATION",
                "tenantName": t.org.name,
                "createdDateUtc": t.created.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
                "updatedDateUtc": t.created.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            })
        })
        .collect();
    axum::Json(list).into_response()
}

/// `DELETE /connections/{id}`: disconnects the tenant; its API calls then answer 403.
pub async fn delete_connection(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let at = match bearer_only(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut store = app.store.lock().unwrap();
    let id: Option<Uuid> = id.parse().ok();
    match store
        .tenants
        .iter_mut()
        .find(|t| Some(t.connection_id) == id && at.tenants.contains(&t.tenant_id) && t.connected)
    {
        Some(t) => {
            t.connected = false;
            StatusCode::NO_CONTENT.into_response()
        }
        None => crate::resp::not_found().into_response(),
    }
}
