//! Command-line flags (each with an environment variable) and the settings built from them.

use clap::Parser;
use std::path::PathBuf;

const ADMIN_HELP: &str = "\
Operator API (Authorization: Bearer <admin token>; never rate-limited):
  GET  /admin/state | /admin/settings | /admin/tenants | /admin/counters | /admin/requests?limit=N
  POST /admin/settings            {\"time_scale\":60, \"minute_limit\":60, \"error_rate\":0.1, \"reset_rate\":0.0,
                                   \"latency_ms\":250, \"latency_jitter_ms\":100, \"outage_secs\":30,
                                   \"force_429\":3, \"force_429_problem\":\"minute\",
                                   \"drop_after_apply\":1, \"drop_after_apply_endpoint\":\"allocations\", ...}
  GET  /admin/tenants/{id}/documents   every document of a tenant, no API budget spent
  POST /admin/tenants/{id}/period-lock {\"date\":\"2026-10-31\"} | {\"date\":null}
  POST /admin/tenants/{id}/reconnect   undo DELETE /connections/{id}
  POST /admin/tokens              mint an access token {\"grant\":\"authorization_code\",\"tenants\":[..]}
  POST /admin/tokens/expire       expire every access token
  POST /admin/reset               clear limits, keys, counters, faults; documents back to seed
  POST /admin/snapshot            write --snapshot now
Identity: POST /connect/token, GET /identity/authorize?redirect_uri=..&state=.. (consent shortcut),
GET /connections, DELETE /connections/{id}. API: /api.xro/2.0/... Health: /healthz /readyz /metrics";

/// A local imitation of Xero's Accounting API (identity, accounting, limits, webhooks), with an
/// operator API under `/admin` (bearer `--admin-token`) for tests: time scale, faults, counters,
/// document reads and reset.
#[derive(Debug, Clone, Parser)]
#[command(name = "xero-sandbox", version, after_help = ADMIN_HELP)]
pub struct Config {
    /// Address to listen on; the API, identity, admin, health and metrics share it.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:5080")]
    pub listen: String,
    /// OAuth2 client id accepted by /connect/token.
    #[arg(
        long,
        env = "XERO_SANDBOX_CLIENT_ID",
        default_value = "ledgerline-sandbox"
    )]
    pub client_id: String,
    /// OAuth2 client secret accepted by /connect/token.
    #[arg(
        long,
        env = "XERO_SANDBOX_CLIENT_SECRET",
        default_value = "sandbox-secret"
    )]
    pub client_secret: String,
    /// Bearer token for the /admin API.
    #[arg(
        long,
        env = "XERO_SANDBOX_ADMIN_TOKEN",
        default_value = "sandbox-admin"
    )]
    pub admin_token: String,
    /// What kind of Xero app the sandbox plays: `granular` (made from 2 March 2026, as every
    /// new app and Custom Connection is: broad scopes answer `invalid_scope`) or `broad` (an
    /// older app, which may still ask for `accounting.transactions`).
    #[arg(long, env = "XERO_SANDBOX_APP_KIND", default_value = "granular", value_parser = ["granular", "broad"])]
    pub app_kind: String,
    /// Number of demo organisations to create when no seed file is given.
    #[arg(long, env = "XERO_SANDBOX_TENANTS", default_value_t = 1)]
    pub tenants: usize,
    /// JSON seed file: `{"tenants":[{"name":..., "tenant_id":..., "accounts":[...], ...}]}`;
    /// anything a tenant leaves out comes from the demo organisation.
    #[arg(long, env = "XERO_SANDBOX_SEED")]
    pub seed: Option<PathBuf>,
    /// Snapshot file: loaded at start if present, written on shutdown.
    #[arg(long, env = "XERO_SANDBOX_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,
    /// Period lock date (YYYY-MM-DD) for every tenant; documents dated on or before it are refused.
    #[arg(long, env = "XERO_SANDBOX_PERIOD_LOCK_DATE")]
    pub period_lock_date: Option<chrono::NaiveDate>,
    /// Name in the response envelope's `ProviderName`.
    #[arg(long, env = "XERO_SANDBOX_PROVIDER_NAME", default_value = "Ledgerline")]
    pub provider_name: String,
    /// Divides every window the sandbox keeps (rate-limit windows and Retry-After, token
    /// lifetimes, refresh grace, idempotency window): 60 makes a minute last one second.
    #[arg(long, env = "XERO_SANDBOX_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Per-tenant calls per minute.
    #[arg(long, env = "XERO_SANDBOX_MINUTE_LIMIT", default_value_t = 60)]
    pub minute_limit: u32,
    /// Per-tenant calls per day.
    #[arg(long, env = "XERO_SANDBOX_DAY_LIMIT", default_value_t = 5000)]
    pub day_limit: u32,
    /// Per-tenant calls in flight.
    #[arg(long, env = "XERO_SANDBOX_CONCURRENT_LIMIT", default_value_t = 5)]
    pub concurrent_limit: u32,
    /// Calls per minute across all tenants.
    #[arg(long, env = "XERO_SANDBOX_APP_MINUTE_LIMIT", default_value_t = 10_000)]
    pub app_minute_limit: u32,
    /// Access-token lifetime in seconds (before time scaling).
    #[arg(long, env = "XERO_SANDBOX_ACCESS_TOKEN_SECS", default_value_t = 1800)]
    pub access_token_secs: u64,
    /// How long a rotated refresh token stays usable, in seconds (before time scaling).
    #[arg(long, env = "XERO_SANDBOX_REFRESH_GRACE_SECS", default_value_t = 1800)]
    pub refresh_grace_secs: u64,
    /// Idempotency-Key memory in seconds (before time scaling).
    #[arg(long, env = "XERO_SANDBOX_IDEMPOTENCY_SECS", default_value_t = 360)]
    pub idempotency_secs: u64,
    /// Roll back a whole summarised batch when one element fails (Xero reportedly does not).
    #[arg(long, env = "XERO_SANDBOX_ATOMIC_BATCHES", default_value_t = false)]
    pub atomic_batches: bool,
    /// Round midpoints to even instead of away from zero.
    #[arg(long, env = "XERO_SANDBOX_BANKERS_ROUNDING", default_value_t = false)]
    pub bankers_rounding: bool,
    /// Fraction of API calls (0..1) answered with a 500.
    #[arg(long, env = "XERO_SANDBOX_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of API calls (0..1) whose connection is cut mid-response.
    #[arg(long, env = "XERO_SANDBOX_RESET_RATE", default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Milliseconds added to every API call.
    #[arg(long, env = "XERO_SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Up to this many extra milliseconds, uniformly random, on top of `--latency-ms`.
    #[arg(long, env = "XERO_SANDBOX_LATENCY_JITTER_MS", default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// URL that receives Xero-style webhooks (INVOICE, CONTACT, CREDITNOTE).
    #[arg(long, env = "XERO_SANDBOX_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Webhook signing key (x-xero-signature is base64 HMAC-SHA256 of the body with it).
    #[arg(
        long,
        env = "XERO_SANDBOX_WEBHOOK_KEY",
        default_value = "sandbox-webhook-key"
    )]
    pub webhook_key: String,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

impl Config {
    /// Defaults as if started with no flags, listening on an ephemeral port (for tests).
    pub fn for_tests() -> Self {
        let mut c = Self::parse_from(["xero-sandbox"]);
        c.listen = "127.0.0.1:0".into();
        c
    }
}
