//! reconciler configuration: flags and environment over the `[xero]` file section over
//! embedded defaults (a local xero-sandbox, report-only for changes made in Xero).

use crate::findings::{Kind, Policy, Slas};
use clap::{Args, Parser, Subcommand};
use ledgerline_platform::config::{CommonArgs, ConfigError, FileConfig, parse_duration};
use ledgerline_xero_client::settings::{Scopes, Settings, XeroArgs};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "reconciler",
    version,
    about = "Projects every order's store and Xero sides, finds drift and asks the pipeline to repair it."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub recon: ReconArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: none means "serve".
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rebuild the projection from ORDERS, XERO and OBSERVED alone (no Xero call), with a
    /// progress bar.
    Rebuild(RebuildArgs),
    /// The reconciliation report: per day (in the organisation's timezone) and currency, the
    /// store's figures against Xero's, every difference explained. Read from the projection's
    /// rows in NATS; never calls Xero.
    Report(ReportArgs),
    /// Ask the running service's `/readyz` on its listen address; exit 0 when ready (the
    /// container healthcheck: no curl in the image).
    Healthcheck,
}

/// `report` flags.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The store.
    #[arg(long, default_value = "main")]
    pub store: String,
    /// First day, YYYY-MM-DD (default: six days before `--to`).
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today).
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Whose organisation settings (timezone, base currency) to use (default: the first the
    /// reconciler has read).
    #[arg(long)]
    pub tenant: Option<String>,
    /// JSON, for scripts.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV, one fact per record, for scripts and spreadsheets.
    #[arg(long)]
    pub csv: bool,
}

/// `rebuild` flags.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Hide the progress bar.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}

/// Flags of the service itself.
#[derive(Clone, Args)]
pub struct ReconArgs {
    /// Where Xero is, the app's credentials and its limits (`XERO_*`, shared with the writer).
    #[command(flatten)]
    pub xero: XeroArgs,
    /// The Xero webhook signing key (`x-xero-signature` is a base64 HMAC-SHA256 of the body).
    #[arg(long, env = "XERO_WEBHOOK_KEY", hide_env_values = true)]
    pub webhook_key: Option<SecretString>,
    /// Share of each tenant's day of Xero calls the reconciler may spend (its lane's cap).
    #[arg(long, env = "RECON_DAY_SHARE", default_value_t = 0.1)]
    pub day_share: f64,
    /// Poll Xero this often (default: the day share spread over the day, at least a minute).
    #[arg(long, env = "RECON_POLL_INTERVAL", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Ask the store's API (through webhook-ingest) for changed orders this often.
    #[arg(long, env = "RECON_STORE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub store_interval: Duration,
    /// Stores whose orders the reconciler checks against the store's API.
    #[arg(
        long = "store",
        env = "RECON_STORES",
        value_delimiter = ';',
        default_value = "main"
    )]
    pub stores: Vec<String>,
    /// An order is expected in Xero this long after the store's event.
    #[arg(long, env = "RECON_INVOICE_SLA", default_value = "10m", value_parser = parse_duration)]
    pub invoice_sla: Duration,
    /// A payment, void or refund is expected in Xero this long after the store's event.
    #[arg(long, env = "RECON_SETTLE_SLA", default_value = "10m", value_parser = parse_duration)]
    pub settle_sla: Duration,
    /// How often open orders are checked against their SLAs.
    #[arg(long, env = "RECON_SWEEP_EVERY", default_value = "30s", value_parser = parse_duration)]
    pub sweep_every: Duration,
    /// What to do per finding kind, `KIND=report|resync|repair` (repeatable; `;` in the
    /// environment). Defaults: repair what the pipeline owes Xero (no_invoice, not_paid,
    /// void_missing, refund_missing), resync what it never saw (unseen_order), report the rest
    /// (a change an accountant made in Xero is never overwritten unless set to repair).
    #[arg(long = "policy", env = "RECON_POLICIES", value_delimiter = ';')]
    pub policies: Vec<String>,
    /// Repair and resync requests sent per minute at most.
    #[arg(long, env = "RECON_ACTIONS_PER_MINUTE", default_value_t = 60)]
    pub actions_per_minute: u32,
    /// Bearer token for the read API (`/v1/findings`, `/v1/orders/...`); without one it
    /// answers 403.
    #[arg(long, env = "RECON_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,
    /// The dead-letter service's address as a person's browser reaches it (e.g.
    /// `http://127.0.0.1:8094`): the report links to its review queue and entries.
    #[arg(long, env = "RECON_DEAD_LETTER_URL")]
    pub dead_letter_url: Option<String>,
}

impl std::fmt::Debug for ReconArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconArgs")
            .field("xero", &self.xero)
            .field("stores", &self.stores)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// The reconciler's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS connection.
    pub nats: ledgerline_platform::config::NatsArgs,
    /// Xero.
    pub xero: Settings,
    /// Xero webhook signing key (`None`: the receiver refuses every delivery).
    pub webhook_key: Option<SecretString>,
    /// Day share of the reconciler's lane.
    pub day_share: f64,
    /// How often Xero is polled.
    pub poll_interval: Duration,
    /// How often the store's API is asked.
    pub store_interval: Duration,
    /// Stores checked against their API.
    pub stores: Vec<String>,
    /// SLAs.
    pub slas: Slas,
    /// Sweep interval.
    pub sweep_every: Duration,
    /// Policy per kind.
    pub policies: BTreeMap<Kind, Policy>,
    /// Actions a minute.
    pub actions_per_minute: u32,
    /// The read API's token.
    pub api_token: Option<SecretString>,
    /// The dead-letter service's address, for the report's links.
    pub dead_letter_url: Option<String>,
    /// Graceful stop budget.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Resolves flags, environment and the optional file.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let file = FileConfig::load(cli.common.config_file.as_deref())?;
        let a = &cli.recon;
        let xero = Settings::resolve(
            &a.xero,
            file.xero.as_ref(),
            Scopes {
                granular: ledgerline_xero_client::plan::RECONCILER_SCOPES,
                legacy: ledgerline_xero_client::plan::RECONCILER_LEGACY_SCOPES,
            },
        )?;
        if !(a.day_share > 0.0 && a.day_share <= 1.0) {
            return Err(ConfigError::new(
                "RECON_DAY_SHARE",
                "must be above 0 and at most 1",
            ));
        }
        // Three reads a poll (invoices, credit notes, payments) within the day share.
        let polls_a_day =
            (f64::from(xero.limits.day) * a.day_share / f64::from(CALLS_PER_POLL)).max(1.0);
        let spread = xero.limits.day_window.div_f64(polls_a_day);
        let poll_interval = a
            .poll_interval
            .unwrap_or(spread.max(xero.limits.minute_window));
        let mut policies = Kind::ALL
            .iter()
            .map(|k| (*k, k.default_policy()))
            .collect::<BTreeMap<_, _>>();
        for spec in a.policies.iter().filter(|s| !s.trim().is_empty()) {
            let bad = |why: String| ConfigError::new("RECON_POLICIES (--policy)", why);
            let (k, p) = spec
                .split_once('=')
                .ok_or_else(|| bad(format!("{spec:?} is not KIND=report|resync|repair")))?;
            let kind: Kind = k.trim().parse().map_err(bad)?;
            let policy: Policy = p.trim().parse().map_err(bad)?;
            policies.insert(kind, policy);
        }
        for s in &a.stores {
            if !ledgerline_contract::is_valid_token(s) {
                return Err(ConfigError::new(
                    "RECON_STORES",
                    format!("{s:?} is not a valid store name"),
                ));
            }
        }
        Ok(Self {
            nats: cli.common.nats.clone(),
            xero,
            webhook_key: a.webhook_key.clone(),
            day_share: a.day_share,
            poll_interval,
            store_interval: a.store_interval.max(Duration::from_millis(100)),
            stores: a.stores.clone(),
            slas: Slas {
                invoice: a.invoice_sla,
                settle: a.settle_sla,
            },
            sweep_every: a.sweep_every.max(Duration::from_millis(50)),
            policies,
            actions_per_minute: a.actions_per_minute.max(1),
            api_token: a.api_token.clone(),
            dead_letter_url: a.dead_letter_url.clone().filter(|u| !u.trim().is_empty()),
            shutdown_timeout: cli.common.shutdown_timeout,
        })
    }
}

impl Config {
    /// What the report's causes depend on: the kinds the pipeline acts on, and the settle SLA.
    pub fn report_rules(&self) -> crate::report::row::Rules {
        crate::report::row::Rules {
            acting: self
                .policies
                .iter()
                .filter(|(_, p)| **p != Policy::Report)
                .map(|(k, _)| k.as_str().to_owned())
                .collect(),
            settle: self.slas.settle,
        }
    }
}

/// Calls one poll makes when nothing much changed (invoices, credit notes, payments).
pub const CALLS_PER_POLL: u32 = 3;

impl Config {
    /// What the poll interval asks of the reconciler's lane that the lane will not give: polls
    /// are then spaced by the budget, not by the interval.
    pub fn poll_warnings(&self) -> Vec<String> {
        let limits = self.xero.limits;
        let per = |window: Duration| {
            f64::from(CALLS_PER_POLL) * window.as_secs_f64()
                / self.poll_interval.as_secs_f64().max(0.001)
        };
        let mut out = Vec::new();
        let minute_cap = (f64::from(limits.minute) * self.day_share).floor();
        if per(limits.minute_window) > minute_cap {
            out.push(format!(
                "RECON_POLL_INTERVAL {:?} asks for {:.0} calls a minute, but RECON_DAY_SHARE {} allows {minute_cap}: polls will run as the budget allows, not every {:?}.",
                self.poll_interval,
                per(limits.minute_window),
                self.day_share,
                self.poll_interval
            ));
        }
        let day_cap = (f64::from(limits.day) * self.day_share).floor();
        if per(limits.day_window) > day_cap {
            out.push(format!(
                "RECON_POLL_INTERVAL {:?} asks for {:.0} calls a day, but RECON_DAY_SHARE {} of the tier's {} allows {day_cap}: polling stops for the rest of the day once it is spent.",
                self.poll_interval,
                per(limits.day_window),
                self.day_share,
                limits.day
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_only_scopes_and_a_poll_that_fits_the_day_share() {
        let cli = Cli::parse_from(["reconciler"]);
        let c = Config::from_cli(&cli).unwrap();
        assert!(
            c.xero
                .scopes
                .split_whitespace()
                .filter(|s| s.starts_with("accounting."))
                .all(|s| s.ends_with(".read")),
            "{}",
            c.xero.scopes
        );
        // Core: 5,000 a day, 10 % in three reads a poll: every ~8.6 minutes.
        assert!(
            c.poll_interval > Duration::from_secs(500)
                && c.poll_interval < Duration::from_secs(540)
        );
        let starter = Cli::parse_from(["reconciler", "--xero-tier", "starter"]);
        let s = Config::from_cli(&starter).unwrap();
        assert!(
            s.poll_interval > Duration::from_secs(40 * 60),
            "{:?}",
            s.poll_interval
        );
        assert_eq!(c.policies[&Kind::ChangedInXero], Policy::Report);
        assert_eq!(c.policies[&Kind::NoInvoice], Policy::Repair);
        let over = Cli::parse_from(["reconciler", "--policy", "changed_in_xero=repair"]);
        assert_eq!(
            Config::from_cli(&over).unwrap().policies[&Kind::ChangedInXero],
            Policy::Repair
        );
        assert!(
            Config::from_cli(&Cli::parse_from(["reconciler", "--policy", "nope=repair"])).is_err()
        );
        // The derived interval fits the lane; a short one set by hand is called out.
        assert!(c.poll_warnings().is_empty(), "{:?}", c.poll_warnings());
        assert!(s.poll_warnings().is_empty(), "{:?}", s.poll_warnings());
        let fast = Cli::parse_from(["reconciler", "--poll-interval", "5s"]);
        let w = Config::from_cli(&fast).unwrap().poll_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("36 calls a minute") && w[0].contains("allows 6"),
            "{w:?}"
        );
    }
}
