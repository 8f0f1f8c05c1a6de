//! xero-writer configuration: flags and environment, over the optional TOML file, over the
//! embedded defaults (a local xero-sandbox and a store named `main`).

use clap::{Args, Parser, Subcommand};
use ledgerline_platform::config::{CommonArgs, ConfigError, FileConfig, NatsArgs, parse_duration};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "xero-writer",
    version,
    about = "Turns canonical orders into Xero contacts, invoices, payments, credit notes and voids."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub writer: WriterArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; none means "serve".
#[derive(Debug, Subcommand)]
pub enum Command {
    /// First consent for `XERO_GRANT_TYPE=authorization_code`: prints Xero's authorize URL, takes
    /// the redirect (local listener, pasted URL or `--code`), exchanges the code and stores the
    /// token set in the XERO_TOKENS bucket, where running writers pick it up.
    Connect(ConnectArgs),
    /// Ask the running service's `/readyz` on its listen address; exit 0 when ready (the
    /// container healthcheck: no curl in the image).
    Healthcheck,
}

/// `connect` flags.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Redirect URI registered for the Xero app. Default: `http://<redirect-listen>/callback`.
    #[arg(long, env = "XERO_REDIRECT_URI")]
    pub redirect_uri: Option<String>,
    /// Local address that receives the browser's redirect (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:5081")]
    pub redirect_listen: String,
    /// Read the redirected URL (or just the code) from standard input instead of listening:
    /// for a headless machine, open the URL elsewhere and paste where the browser ended up.
    #[arg(long, default_value_t = false, conflicts_with = "code")]
    pub paste: bool,
    /// An authorization code obtained already (no `state` check: you vouch for it). Needs the
    /// same `--redirect-uri` the code was issued for.
    #[arg(long)]
    pub code: Option<SecretString>,
    /// The tenant to store the tokens for, when the consent reached several organisations.
    #[arg(long)]
    pub tenant: Option<String>,
    /// How long to wait for the redirect.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub wait: Duration,
}

/// Flags of the writer itself.
#[derive(Clone, Args)]
pub struct WriterArgs {
    /// Where Xero is, the app's credentials, and Xero's limits (`XERO_*`).
    #[command(flatten)]
    pub xero: XeroArgs,
    /// A Xero tenant and the stores that post to it, `TENANT=STORE[,STORE]` (repeatable; `;`
    /// separates tenants in the environment). Default: the single tenant from GET /connections,
    /// with store `main`.
    #[arg(long = "tenant", env = "WRITER_TENANTS", value_delimiter = ';')]
    pub tenants: Vec<String>,
    /// Mapping file (defaults are embedded).
    #[arg(long, env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,
    /// Compute documents and log them, write nothing to Xero.
    #[arg(long, env = "WRITER_DRY_RUN", default_value_t = false)]
    pub dry_run: bool,
    /// Documents per Xero request (Xero recommends at most 50).
    #[arg(long, env = "WRITER_BATCH_SIZE", default_value_t = 50)]
    pub batch_size: usize,
    /// Longest wait for a batch to fill when the budget is tight.
    #[arg(long, env = "WRITER_MAX_LINGER", default_value = "5s", value_parser = parse_duration)]
    pub max_linger: Duration,
    /// Consecutive 5xx/timeouts that open a tenant's circuit breaker.
    #[arg(long, env = "WRITER_BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,
    /// How long an open breaker waits before a half-open probe.
    #[arg(long, env = "WRITER_BREAKER_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub breaker_cooldown: Duration,
    /// How often the org's accounts, tax rates, tracking and currencies are re-read.
    #[arg(long, env = "WRITER_SETTINGS_REFRESH", default_value = "30m", value_parser = parse_duration)]
    pub settings_refresh: Duration,
    /// A paid order that changes: `review` (dead letter POLICY) or `ignore`.
    #[arg(long, env = "WRITER_PAID_CHANGE", default_value = "review")]
    pub paid_change: String,
    /// Static exchange rate for a currency the Xero org lacks, `CODE=RATE` (base-currency units
    /// per unit of CODE; repeatable, `;` in the environment). Such orders are converted to the
    /// base currency, the original amount and currency kept in the Reference.
    #[arg(long = "fx-rate", env = "WRITER_FX_RATES", value_delimiter = ';')]
    pub fx_rates: Vec<String>,
    /// Go-live date (YYYY-MM-DD): orders created before it are left alone.
    #[arg(long, env = "WRITER_START_DATE")]
    pub start_date: Option<chrono::NaiveDate>,
    /// Bearer token for the operator endpoints (pause/resume a tenant). Without one they answer 403.
    #[arg(long, env = "WRITER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<SecretString>,
    /// Delete payments before voiding a cancelled order's invoice (else review).
    #[arg(long, env = "WRITER_VOID_REMOVES_PAYMENTS", default_value_t = false)]
    pub void_removes_payments: bool,
    /// Status of new invoices and credit notes: `authorised` (default) or `draft` (a person
    /// approves them in Xero; payments and allocations wait for that, in review).
    #[arg(long, env = "WRITER_INVOICE_STATUS")]
    pub invoice_status: Option<String>,
    /// Days after the invoice date an invoice is due when neither the order, the contact nor the
    /// organisation sets terms (0: due on the invoice date).
    #[arg(long, env = "WRITER_DEFAULT_DUE_DAYS")]
    pub default_due_days: Option<u32>,
    /// An order for a customer whose Xero contact is archived: `restore` (default; the contact is
    /// made active again) or `review`.
    #[arg(long, env = "WRITER_ARCHIVED_CONTACT")]
    pub archived_contact: Option<String>,
    /// A change to a document dated on or before the org's lock date: `review` (default) or
    /// `credit-and-reissue`.
    #[arg(long, env = "WRITER_LOCKED_PERIOD")]
    pub locked_period: Option<String>,
    /// A tracking value the organisation lacks (no such active category or option): `omit`
    /// (default; the line goes without it) or `review` (the order goes to review with the
    /// closest options).
    #[arg(long, env = "WRITER_UNKNOWN_TRACKING")]
    pub unknown_tracking: Option<String>,
    /// An order event whose order last changed longer ago than this is backfill (history at
    /// go-live, a resync): its calls are capped by `--backfill-day-share`. Default 0 (off:
    /// every event is live); e.g. 24h when going live on a store with history.
    #[arg(long, env = "WRITER_BACKFILL_AGE", value_parser = parse_duration)]
    pub backfill_age: Option<Duration>,
    /// Share (0..=1) of each day (and minute) window that backfill may use; live orders are
    /// never held by it. Default 0.5; 1 removes the cap.
    #[arg(long, env = "WRITER_BACKFILL_DAY_SHARE")]
    pub backfill_day_share: Option<f64>,
}

impl std::fmt::Debug for WriterArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterArgs")
            .field("xero", &self.xero)
            .field("tenants", &self.tenants)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// `[writer]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterFile {
    /// Same as `--dry-run`.
    pub dry_run: Option<bool>,
    /// Same as `--invoice-status`.
    pub invoice_status: Option<String>,
    /// Same as `--default-due-days`.
    pub default_due_days: Option<u32>,
    /// Same as `--archived-contact`.
    pub archived_contact: Option<String>,
    /// Same as `--locked-period`.
    pub locked_period: Option<String>,
    /// Same as `--unknown-tracking`.
    pub unknown_tracking: Option<String>,
    /// Same as `--void-removes-payments`.
    pub void_removes_payments: Option<bool>,
    /// Same as `--backfill-age` (e.g. "24h").
    pub backfill_age: Option<String>,
    /// Same as `--backfill-day-share`.
    pub backfill_day_share: Option<f64>,
}

/// Status of the invoices and credit notes the writer creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocStatus {
    /// Approved at once (payments and allocations follow).
    Authorised,
    /// Left for a person to approve in Xero.
    Draft,
}

impl DocStatus {
    /// Xero's spelling.
    pub fn as_xero(self) -> &'static str {
        match self {
            Self::Authorised => "AUTHORISED",
            Self::Draft => "DRAFT",
        }
    }
}

/// What to do when an order's contact is archived in Xero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchivedContact {
    /// Make it active again (`ContactStatus: ACTIVE`), then post.
    Restore,
    /// Send the order to review.
    Review,
}

/// What to do with a change to a document dated in a locked period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedPeriod {
    /// Send it to review.
    Review,
    /// Credit the old document after the lock date and issue a new invoice.
    CreditAndReissue,
}

/// What to do with a tracking value the organisation lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTracking {
    /// Leave it off the lines (logged and counted).
    #[default]
    Omit,
    /// Send the order to review with the closest options.
    Review,
}

fn choice<T: Copy>(
    key: &str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(v) = value else {
        return Ok(default);
    };
    let v = v.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ConfigError::new(key, format!("{v:?}: use {}", names.join(" or ")))
        })
}

/// One Xero tenant and the stores it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// Xero tenant id (as sent in `xero-tenant-id`, and a subject token).
    pub tenant: String,
    /// Stores whose orders go to this tenant.
    pub stores: Vec<String>,
}

pub use ledgerline_xero_client::budget::Limits;
pub use ledgerline_xero_client::settings::{GrantType, Scopes, Settings, XeroArgs};

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS connection.
    pub nats: NatsArgs,
    /// Xero: where, who, what it allows.
    pub xero: Settings,
    /// Tenants; empty means "discover the single one".
    pub tenants: Vec<TenantConfig>,
    /// Mapping file.
    pub mapping: Option<PathBuf>,
    /// Write nothing.
    pub dry_run: bool,
    /// Documents per request.
    pub batch_size: usize,
    /// Longest linger.
    pub max_linger: Duration,
    /// Breaker threshold.
    pub breaker_threshold: u32,
    /// Breaker cooldown.
    pub breaker_cooldown: Duration,
    /// Settings cache lifetime.
    pub settings_refresh: Duration,
    /// Review (true) or ignore a change to a paid order.
    pub paid_change_review: bool,
    /// Delete payments before voiding.
    pub void_removes_payments: bool,
    /// Status of new invoices and credit notes.
    pub invoice_status: DocStatus,
    /// Due days after the invoice date when nothing else sets terms.
    pub default_due_days: u32,
    /// Archived contact policy.
    pub archived_contact: ArchivedContact,
    /// Locked period policy.
    pub locked_period: LockedPeriod,
    /// Unknown tracking value policy.
    pub unknown_tracking: UnknownTracking,
    /// Graceful stop budget.
    pub shutdown_timeout: Duration,
    /// Go-live date.
    pub start_date: Option<chrono::NaiveDate>,
    /// Static exchange rates (base units per unit of the code).
    pub fx_rates: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// Operator endpoints' bearer token.
    pub operator_token: Option<SecretString>,
    /// Events whose order last changed longer ago are backfill (zero: none are).
    pub backfill_age: Duration,
    /// Share of each window backfill may use.
    pub backfill_day_share: f64,
}

/// Parses `TENANT=STORE[,STORE]`.
pub fn parse_tenant(spec: &str) -> Result<TenantConfig, ConfigError> {
    let key = "WRITER_TENANTS (--tenant)";
    let (tenant, stores) = spec
        .split_once('=')
        .ok_or_else(|| ConfigError::new(key, format!("{spec:?} is not TENANT=STORE[,STORE]")))?;
    let tenant = tenant.trim().to_ascii_lowercase();
    if !ledgerline_contract::is_valid_token(&tenant) {
        return Err(ConfigError::new(
            key,
            format!("tenant {tenant:?} must be lower-case letters, digits, '-' or '_'"),
        ));
    }
    let stores: Vec<String> = stores
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if stores.is_empty() {
        return Err(ConfigError::new(key, format!("{spec:?} names no store")));
    }
    for s in &stores {
        if !ledgerline_contract::is_valid_token(s) {
            return Err(ConfigError::new(
                key,
                format!("store {s:?} is not a valid name"),
            ));
        }
    }
    Ok(TenantConfig { tenant, stores })
}

/// Parses `CODE=RATE` entries.
pub fn parse_fx(
    specs: &[String],
) -> Result<std::collections::BTreeMap<String, rust_decimal::Decimal>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let bad = || {
            ConfigError::new(
                "WRITER_FX_RATES (--fx-rate)",
                format!("{spec:?} is not CODE=RATE"),
            )
        };
        let (code, rate) = spec.split_once('=').ok_or_else(bad)?;
        let rate: rust_decimal::Decimal = rate.trim().parse().map_err(|_| bad())?;
        if rate <= rust_decimal::Decimal::ZERO || code.trim().len() != 3 {
            return Err(bad());
        }
        out.insert(code.trim().to_ascii_uppercase(), rate);
    }
    Ok(out)
}

impl Config {
    /// Builds the configuration from flags, environment and the optional file.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let file = FileConfig::load(cli.common.config_file.as_deref())?;
        let section: WriterFile = file.section("writer")?;
        let w = &cli.writer;
        let xero = Settings::resolve(
            &w.xero,
            file.xero.as_ref(),
            Scopes {
                granular: ledgerline_xero_client::plan::WRITER_SCOPES,
                legacy: ledgerline_xero_client::plan::WRITER_LEGACY_SCOPES,
            },
        )?;
        let mut tenants = Vec::new();
        for spec in &w.tenants {
            tenants.push(parse_tenant(spec)?);
        }
        if tenants.is_empty() {
            // Stores in the file that name a tenant.
            let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for (name, store) in &file.stores {
                if let Some(t) = &store.tenant {
                    by_tenant
                        .entry(t.to_ascii_lowercase())
                        .or_default()
                        .push(name.clone());
                }
            }
            tenants = by_tenant
                .into_iter()
                .map(|(tenant, stores)| TenantConfig { tenant, stores })
                .collect();
        }
        let mapping = w
            .mapping
            .clone()
            .or_else(|| file.stores.values().find_map(|s| s.mapping.clone()));
        let paid_change_review = match w.paid_change.as_str() {
            "review" => true,
            "ignore" => false,
            other => {
                return Err(ConfigError::new(
                    "WRITER_PAID_CHANGE",
                    format!("{other:?}: use review or ignore"),
                ));
            }
        };
        let invoice_status = choice(
            "WRITER_INVOICE_STATUS",
            w.invoice_status
                .as_deref()
                .or(section.invoice_status.as_deref()),
            DocStatus::Authorised,
            &[
                ("authorised", DocStatus::Authorised),
                ("authorized", DocStatus::Authorised),
                ("draft", DocStatus::Draft),
            ],
        )?;
        let archived_contact = choice(
            "WRITER_ARCHIVED_CONTACT",
            w.archived_contact
                .as_deref()
                .or(section.archived_contact.as_deref()),
            ArchivedContact::Restore,
            &[
                ("restore", ArchivedContact::Restore),
                ("review", ArchivedContact::Review),
            ],
        )?;
        let locked_period = choice(
            "WRITER_LOCKED_PERIOD",
            w.locked_period
                .as_deref()
                .or(section.locked_period.as_deref()),
            LockedPeriod::Review,
            &[
                ("review", LockedPeriod::Review),
                ("credit-and-reissue", LockedPeriod::CreditAndReissue),
            ],
        )?;
        let unknown_tracking = choice(
            "WRITER_UNKNOWN_TRACKING",
            w.unknown_tracking
                .as_deref()
                .or(section.unknown_tracking.as_deref()),
            UnknownTracking::Omit,
            &[
                ("omit", UnknownTracking::Omit),
                ("review", UnknownTracking::Review),
            ],
        )?;
        let default_due_days = w.default_due_days.or(section.default_due_days).unwrap_or(0);
        if default_due_days > 3660 {
            return Err(ConfigError::new(
                "WRITER_DEFAULT_DUE_DAYS",
                "at most 3660 days",
            ));
        }
        let backfill_age = match (w.backfill_age, section.backfill_age.as_deref()) {
            (Some(d), _) => d,
            (None, Some(s)) => {
                parse_duration(s).map_err(|e| ConfigError::new("WRITER_BACKFILL_AGE", e))?
            }
            (None, None) => Duration::ZERO,
        };
        let backfill_day_share = w
            .backfill_day_share
            .or(section.backfill_day_share)
            .unwrap_or(0.5);
        if !(0.0..=1.0).contains(&backfill_day_share) {
            return Err(ConfigError::new(
                "WRITER_BACKFILL_DAY_SHARE",
                "must be between 0 and 1",
            ));
        }
        Ok(Self {
            nats: cli.common.nats.clone(),
            xero,
            tenants,
            mapping,
            dry_run: w.dry_run || section.dry_run.unwrap_or(false),
            batch_size: w.batch_size.clamp(1, 50),
            max_linger: w.max_linger,
            breaker_threshold: w.breaker_threshold.max(1),
            breaker_cooldown: w.breaker_cooldown,
            settings_refresh: w.settings_refresh,
            paid_change_review,
            void_removes_payments: w.void_removes_payments
                || section.void_removes_payments.unwrap_or(false),
            invoice_status,
            default_due_days,
            archived_contact,
            locked_period,
            unknown_tracking,
            shutdown_timeout: cli.common.shutdown_timeout,
            start_date: w.start_date,
            fx_rates: parse_fx(&w.fx_rates)?,
            operator_token: w.operator_token.clone(),
            backfill_age,
            backfill_day_share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_specs() {
        let t = parse_tenant("abc-1=main,outlet").unwrap();
        assert_eq!(t.tenant, "abc-1");
        assert_eq!(t.stores, vec!["main", "outlet"]);
        assert!(parse_tenant("abc").is_err());
        assert!(parse_tenant("abc=").is_err());
        assert!(parse_tenant("a.b=main").is_err());
    }

    #[test]
    fn defaults_point_at_the_sandbox() {
        let cli = Cli::parse_from(["xero-writer"]);
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(c.xero.api_url, "http://127.0.0.1:5080/api.xro/2.0");
        assert_eq!(c.xero.client_id, "ledgerline-sandbox");
        assert!(c.tenants.is_empty());
        assert_eq!(c.xero.limits.minute, 60);
        assert_eq!(c.xero.grant_type, GrantType::ClientCredentials);
        assert_eq!(c.invoice_status, DocStatus::Authorised);
        assert_eq!(c.default_due_days, 0);
        assert_eq!(c.archived_contact, ArchivedContact::Restore);
        assert_eq!(c.locked_period, LockedPeriod::Review);
        assert_eq!(c.unknown_tracking, UnknownTracking::Omit);
        assert_eq!(c.backfill_age, Duration::ZERO);
        assert_eq!(c.backfill_day_share, 0.5);
        assert_eq!(c.xero.limits.day, 5_000);
        assert_eq!(c.xero.egress_allowance, Some(10_000_000_000));
        assert_eq!(c.xero.egress_cap, None);
        assert_eq!(
            c.xero.scopes,
            "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read"
        );
    }

    #[test]
    fn tiers_set_the_day_and_egress_and_explicit_limits_win() {
        let c = |args: &[&str]| {
            let mut all = vec!["xero-writer"];
            all.extend_from_slice(args);
            Config::from_cli(&Cli::parse_from(all))
        };
        let starter = c(&["--xero-tier", "starter"]).unwrap();
        assert_eq!(starter.xero.limits.day, 1_000);
        assert_eq!(starter.xero.egress_allowance, None);
        let plus = c(&["--xero-tier", "plus", "--day-limit", "800"]).unwrap();
        assert_eq!(plus.xero.limits.day, 800);
        assert_eq!(plus.xero.egress_allowance, Some(50_000_000_000));
        let own = c(&["--egress-allowance", "2GB", "--egress-cap", "2.5GB"]).unwrap();
        assert_eq!(own.xero.egress_allowance, Some(2_000_000_000));
        assert_eq!(own.xero.egress_cap, Some(2_500_000_000));
        assert!(c(&["--xero-tier", "gold"]).is_err());
        assert!(c(&["--egress-cap", "lots"]).is_err());
    }

    #[test]
    fn broad_scopes_only_for_a_legacy_app() {
        let c = |args: &[&str]| {
            let mut all = vec!["xero-writer"];
            all.extend_from_slice(args);
            Config::from_cli(&Cli::parse_from(all))
        };
        let refused = c(&["--xero-scopes", "offline_access accounting.transactions"]).unwrap_err();
        assert!(
            refused.to_string().contains("XERO_LEGACY_SCOPES"),
            "{refused}"
        );
        let legacy = c(&["--xero-legacy-scopes"]).unwrap();
        assert_eq!(
            legacy.xero.scopes,
            "offline_access accounting.transactions accounting.contacts accounting.settings.read"
        );
    }

    #[test]
    fn backfill_settings_from_file_flags_win_and_bad_shares_are_refused() {
        let path =
            std::env::temp_dir().join(format!("xero-writer-backfill-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[writer]\nbackfill_age = \"2h\"\nbackfill_day_share = 0.25\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let c = Config::from_cli(&Cli::parse_from(["xero-writer", "--config", file])).unwrap();
        assert_eq!(c.backfill_age, Duration::from_secs(7200));
        assert_eq!(c.backfill_day_share, 0.25);
        let c = Config::from_cli(&Cli::parse_from([
            "xero-writer",
            "--config",
            file,
            "--backfill-day-share",
            "1",
            "--backfill-age",
            "0s",
        ]))
        .unwrap();
        assert_eq!(c.backfill_day_share, 1.0);
        assert_eq!(c.backfill_age, Duration::ZERO);
        let _ = std::fs::remove_file(&path);
        let cli = Cli::parse_from(["xero-writer", "--backfill-day-share", "1.5"]);
        let e = Config::from_cli(&cli).unwrap_err().to_string();
        assert!(e.contains("WRITER_BACKFILL_DAY_SHARE"), "{e}");
    }

    #[test]
    fn policies_come_from_the_writer_section_and_flags_win() {
        let path =
            std::env::temp_dir().join(format!("xero-writer-policies-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[writer]\ninvoice_status = \"draft\"\ndefault_due_days = 30\narchived_contact = \"review\"\nlocked_period = \"credit-and-reissue\"\nvoid_removes_payments = true\nunknown_tracking = \"review\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let c = Config::from_cli(&Cli::parse_from(["xero-writer", "--config", file])).unwrap();
        assert_eq!(c.invoice_status, DocStatus::Draft);
        assert_eq!(c.default_due_days, 30);
        assert_eq!(c.archived_contact, ArchivedContact::Review);
        assert_eq!(c.locked_period, LockedPeriod::CreditAndReissue);
        assert!(c.void_removes_payments);
        assert_eq!(c.unknown_tracking, UnknownTracking::Review);
        let c = Config::from_cli(&Cli::parse_from([
            "xero-writer",
            "--config",
            file,
            "--invoice-status",
            "authorised",
        ]))
        .unwrap();
        assert_eq!(c.invoice_status, DocStatus::Authorised);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn policies_parse_and_bad_values_name_their_setting() {
        let cli = Cli::parse_from([
            "xero-writer",
            "--invoice-status",
            "DRAFT",
            "--archived-contact",
            "review",
            "--locked-period",
            "credit-and-reissue",
            "--default-due-days",
            "14",
        ]);
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(c.invoice_status, DocStatus::Draft);
        assert_eq!(c.archived_contact, ArchivedContact::Review);
        assert_eq!(c.locked_period, LockedPeriod::CreditAndReissue);
        assert_eq!(c.default_due_days, 14);
        let cli = Cli::parse_from(["xero-writer", "--invoice-status", "approved"]);
        let e = Config::from_cli(&cli).unwrap_err().to_string();
        assert!(e.contains("WRITER_INVOICE_STATUS"), "{e}");
        let cli = Cli::parse_from(["xero-writer", "--unknown-tracking", "drop"]);
        let e = Config::from_cli(&cli).unwrap_err().to_string();
        assert!(e.contains("WRITER_UNKNOWN_TRACKING"), "{e}");
    }

    #[test]
    fn authorization_code_and_connect() {
        let cli = Cli::parse_from([
            "xero-writer",
            "--xero-grant-type",
            "authorization_code",
            "connect",
            "--redirect-listen",
            "127.0.0.1:0",
        ]);
        let c = Config::from_cli(&cli).unwrap();
        assert_eq!(c.xero.grant_type, GrantType::AuthorizationCode);
        assert_eq!(
            c.xero.authorize_url,
            "http://127.0.0.1:5080/identity/connect/authorize"
        );
        assert!(c.xero.scopes.starts_with("offline_access "));
        assert!(matches!(cli.command, Some(Command::Connect(_))));
        let cli = Cli::parse_from(["xero-writer", "--xero-grant-type", "password"]);
        assert!(Config::from_cli(&cli).is_err());
    }
}
