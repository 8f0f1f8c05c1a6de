//! Where Xero is, who we are to it, and what it allows: the `XERO_*` settings every service
//! that calls Xero reads the same way (flags and environment over the `[xero]` file section
//! over defaults that point at a local xero-sandbox), and the tenant discovery they share.

use crate::budget::Limits;
use crate::plan::{Tier, broad_in, parse_bytes};
use clap::Args;
use ledgerline_platform::config::{ConfigError, XeroFile, resolve_secret};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// The `XERO_*` flags.
#[derive(Clone, Args)]
pub struct XeroArgs {
    /// Xero identity base URL (token endpoint is `<url>/connect/token`).
    #[arg(long, env = "XERO_IDENTITY_URL")]
    pub xero_identity_url: Option<String>,
    /// Xero Accounting API base URL.
    #[arg(long, env = "XERO_API_URL")]
    pub xero_api_url: Option<String>,
    /// OAuth client id.
    #[arg(long, env = "XERO_CLIENT_ID")]
    pub xero_client_id: Option<String>,
    /// OAuth client secret.
    #[arg(long, env = "XERO_CLIENT_SECRET", hide_env_values = true)]
    pub xero_client_secret: Option<SecretString>,
    /// File holding the client secret.
    #[arg(long, env = "XERO_CLIENT_SECRET_FILE")]
    pub xero_client_secret_file: Option<PathBuf>,
    /// OAuth grant: `client_credentials` (custom connection) or `authorization_code` (tokens
    /// from `xero-writer connect`, refreshed in the XERO_TOKENS bucket).
    #[arg(long, env = "XERO_GRANT_TYPE")]
    pub xero_grant_type: Option<String>,
    /// Xero's authorize endpoint (for `connect`). Default: Xero's login URL when the identity
    /// URL is Xero's, else `<identity url>/identity/connect/authorize` (the sandbox).
    #[arg(long, env = "XERO_AUTHORIZE_URL")]
    pub xero_authorize_url: Option<String>,
    /// Scopes asked for (space-separated; `offline_access` gives the refresh token). Default:
    /// the service's granular scopes (the writer: `offline_access accounting.invoices
    /// accounting.payments accounting.contacts accounting.settings.read`; the reconciler the
    /// `.read` ones).
    #[arg(long, env = "XERO_SCOPES")]
    pub xero_scopes: Option<String>,
    /// The Xero app was made before March 2026 and still uses broad scopes: allow
    /// `accounting.transactions` (new apps are refused it with `invalid_scope`).
    #[arg(long, env = "XERO_LEGACY_SCOPES", default_value_t = false)]
    pub xero_legacy_scopes: bool,
    /// Xero pricing tier: starter (1,000 calls a day, egress unlimited), core (5,000; 10 GB a
    /// month), plus (5,000; 50 GB) or advanced (5,000; 250 GB). Explicit limits win over it.
    #[arg(long, env = "XERO_TIER", default_value = "core")]
    pub xero_tier: String,
    /// Egress allowance a month (e.g. `10GB`), instead of the tier's.
    #[arg(long, env = "XERO_EGRESS_ALLOWANCE")]
    pub egress_allowance: Option<String>,
    /// Hold Xero calls (never drop work) once the month's egress reaches this (e.g. `12GB`).
    /// Unset: past the allowance work goes on and the overage is billed.
    #[arg(long, env = "XERO_EGRESS_CAP")]
    pub egress_cap: Option<String>,
    /// Calls per minute per tenant (Xero: 60).
    #[arg(long, env = "XERO_MINUTE_LIMIT", default_value_t = 60)]
    pub minute_limit: u32,
    /// Calls per day per tenant, instead of the tier's (Starter 1,000, others 5,000).
    #[arg(long, env = "XERO_DAY_LIMIT")]
    pub day_limit: Option<u32>,
    /// Calls in flight per tenant (Xero: 5).
    #[arg(long, env = "XERO_CONCURRENT_LIMIT", default_value_t = 5)]
    pub concurrent_limit: u32,
    /// Divides the minute and day windows (match the sandbox's time scale).
    #[arg(long, env = "XERO_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
    /// One Xero call's timeout.
    #[arg(long, env = "XERO_TIMEOUT", default_value = "30s", value_parser = ledgerline_platform::config::parse_duration)]
    pub xero_timeout: Duration,
}

impl std::fmt::Debug for XeroArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XeroArgs")
            .field("xero_api_url", &self.xero_api_url)
            .field("xero_tier", &self.xero_tier)
            .finish_non_exhaustive()
    }
}

/// How a service obtains access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// Custom connection: a token on demand, shared through XERO_TOKENS (`cc.<tenant>`).
    ClientCredentials,
    /// Consent by `xero-writer connect`; access and refresh tokens in XERO_TOKENS
    /// (`ac.<tenant>`), refreshed by one replica at a time.
    AuthorizationCode,
}

/// The scopes a service asks for: its granular default, and the broad one older apps use.
#[derive(Debug, Clone, Copy)]
pub struct Scopes {
    /// Granular (apps from March 2026).
    pub granular: &'static str,
    /// Broad (`XERO_LEGACY_SCOPES`).
    pub legacy: &'static str,
}

/// The settings, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Identity base URL.
    pub identity_url: String,
    /// Accounting API base URL.
    pub api_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
    /// OAuth grant type.
    pub grant_type: GrantType,
    /// Authorize endpoint (`connect`).
    pub authorize_url: String,
    /// Scopes asked for.
    pub scopes: String,
    /// Per-tenant limits.
    pub limits: Limits,
    /// The Xero pricing tier.
    pub tier: Tier,
    /// Egress allowance a month in bytes (`None`: unlimited).
    pub egress_allowance: Option<u64>,
    /// Egress at which calls are held, in bytes.
    pub egress_cap: Option<u64>,
    /// One call's timeout.
    pub timeout: Duration,
}

impl Settings {
    /// Resolves `args` over the file's `[xero]` section over the sandbox defaults; refuses a
    /// broad scope unless the app is an older one (`XERO_LEGACY_SCOPES`).
    pub fn resolve(
        args: &XeroArgs,
        file: Option<&XeroFile>,
        scopes: Scopes,
    ) -> Result<Self, ConfigError> {
        let secret = resolve_secret(
            "XERO_CLIENT_SECRET",
            args.xero_client_secret.clone(),
            args.xero_client_secret_file.as_deref(),
        )?
        .or_else(|| file.and_then(|x| x.client_secret.clone()))
        .unwrap_or_else(|| SecretString::from("sandbox-secret"));
        let grant_type = match args
            .xero_grant_type
            .clone()
            .or_else(|| file.and_then(|x| x.grant_type.clone()))
            .unwrap_or_else(|| "client_credentials".into())
            .as_str()
        {
            "client_credentials" => GrantType::ClientCredentials,
            "authorization_code" => GrantType::AuthorizationCode,
            other => {
                return Err(ConfigError::new(
                    "XERO_GRANT_TYPE",
                    format!("{other:?}: use client_credentials or authorization_code"),
                ));
            }
        };
        let identity_url = args
            .xero_identity_url
            .clone()
            .or_else(|| file.and_then(|x| x.identity_url.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:5080".into())
            .trim_end_matches('/')
            .to_owned();
        let authorize_url = args.xero_authorize_url.clone().unwrap_or_else(|| {
            // Xero splits identity (tokens) and login (consent) across two hosts.
            if identity_url == "https://identity.xero.com" {
                "https://login.xero.com/identity/connect/authorize".into()
            } else {
                format!("{identity_url}/identity/connect/authorize")
            }
        });
        let tier: Tier = args
            .xero_tier
            .parse()
            .map_err(|e: String| ConfigError::new("XERO_TIER", e))?;
        let bytes = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(parse_bytes)
                .transpose()
                .map_err(|e| ConfigError::new(key, e))
        };
        let egress_allowance =
            bytes("XERO_EGRESS_ALLOWANCE", &args.egress_allowance)?.or(tier.egress_allowance());
        let egress_cap = bytes("XERO_EGRESS_CAP", &args.egress_cap)?;
        let scopes = args
            .xero_scopes
            .as_deref()
            .unwrap_or(if args.xero_legacy_scopes {
                scopes.legacy
            } else {
                scopes.granular
            })
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let broad = broad_in(&scopes);
        if !broad.is_empty() && !args.xero_legacy_scopes {
            return Err(ConfigError::new(
                "XERO_SCOPES",
                format!(
                    "{} is a broad scope, which Xero refuses to apps made from March 2026; ask for accounting.invoices and accounting.payments, or set XERO_LEGACY_SCOPES=true for an older app",
                    broad.join(" ")
                ),
            ));
        }
        if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
            return Err(ConfigError::new("XERO_TIME_SCALE", "must be positive"));
        }
        Ok(Self {
            api_url: args
                .xero_api_url
                .clone()
                .or_else(|| file.and_then(|x| x.api_url.clone()))
                .unwrap_or_else(|| "http://127.0.0.1:5080/api.xro/2.0".into())
                .trim_end_matches('/')
                .to_owned(),
            client_id: args
                .xero_client_id
                .clone()
                .or_else(|| file.and_then(|x| x.client_id.clone()))
                .unwrap_or_else(|| "ledgerline-sandbox".into()),
            client_secret: secret,
            grant_type,
            identity_url,
            authorize_url,
            scopes,
            limits: Limits {
                minute: args.minute_limit.max(1),
                day: args.day_limit.unwrap_or(tier.day_calls()).max(1),
                concurrent: args.concurrent_limit.max(1),
                minute_window: Duration::from_secs_f64(60.0 / args.time_scale),
                day_window: Duration::from_secs_f64(86_400.0 / args.time_scale),
            },
            tier,
            egress_allowance,
            egress_cap,
            timeout: args.xero_timeout,
        })
    }

    /// Where Xero is and who we are, for [`crate::Client`]; `agent` names the service.
    pub fn endpoint(&self, agent: &str) -> anyhow::Result<crate::Endpoint> {
        Ok(crate::Endpoint {
            http: ledgerline_platform::tls::http_client(agent)?,
            api_url: self.api_url.clone(),
            identity_url: self.identity_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            timeout: self.timeout,
            scopes: self.scopes.clone(),
        })
    }

    /// The tenants this app reaches: with `authorization_code`, those with a token set in
    /// XERO_TOKENS (from `xero-writer connect`); else those GET /connections lists.
    pub async fn tenants(
        &self,
        endpoint: &crate::Endpoint,
        js: &async_nats::jetstream::Context,
    ) -> Result<Vec<String>, crate::XeroError> {
        if self.grant_type == GrantType::AuthorizationCode {
            stored_tenants(js).await
        } else {
            endpoint.connections().await
        }
    }
}

/// Tenants with an authorization_code token set in XERO_TOKENS (from `xero-writer connect`).
async fn stored_tenants(
    js: &async_nats::jetstream::Context,
) -> Result<Vec<String>, crate::XeroError> {
    use futures::TryStreamExt;
    let store = |e: String| crate::XeroError::Transient(format!("token store: {e}"));
    let kv = js
        .get_key_value(ledgerline_contract::buckets::XERO_TOKENS.bucket)
        .await
        .map_err(|e| store(e.to_string()))?;
    let keys: Vec<String> = kv
        .keys()
        .await
        .map_err(|e| store(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| store(e.to_string()))?;
    let mut out: Vec<String> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("ac."))
        .filter(|t| ledgerline_contract::is_valid_token(t))
        .map(str::to_owned)
        .collect();
    out.sort();
    Ok(out)
}
