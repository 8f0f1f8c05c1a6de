//! dead-letter configuration: flags and environment over embedded defaults, and the operator
//! tokens with their roles.

use crate::auth::{Role, Token, Tokens};
use clap::{Args, Parser, Subcommand};
use ledgerline_platform::config::{CommonArgs, ConfigError, parse_duration, resolve_secret};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "dead-letter",
    version,
    about = "The review queue: dead letters grouped into issues, with suggestions, fix and replay."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: none means "serve"; the others talk to a running service's API.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List entries (or issues with `--issues`).
    List(crate::cli::ListArgs),
    /// Show one entry, with its decoded payload, suggestions and audit trail.
    Show(crate::cli::ShowArgs),
    /// Replay one entry, or every entry matching a filter (a dry-run count first).
    Replay(crate::cli::ReplayArgs),
    /// Apply a suggestion (or a rule of yours) to an issue, then replay its open entries.
    Fix(crate::cli::FixArgs),
    /// Discard one entry, with a reason.
    Discard(crate::cli::DiscardArgs),
    /// Export entries matching a filter as CSV.
    Export(crate::cli::ExportArgs),
    /// Ask the running service's `/readyz` on its listen address; exit 0 when ready (the
    /// container healthcheck: no curl in the image).
    Healthcheck,
}

/// Flags of the service.
#[derive(Clone, Args)]
pub struct ServiceArgs {
    /// API tokens, `ROLE:TOKEN[:STORE,STORE...]` with ROLE `viewer` or `operator` (repeatable;
    /// `;` between them in the environment). Stores limit what the token sees.
    #[arg(
        long = "token",
        env = "DEAD_LETTER_TOKENS",
        value_delimiter = ';',
        hide_env_values = true,
        value_name = "ROLE:TOKEN[:STORES]"
    )]
    pub tokens: Vec<SecretString>,
    /// A file holding the `DEAD_LETTER_TOKENS` value.
    #[arg(long = "tokens-file", env = "DEAD_LETTER_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Slack-compatible webhook URL for alerts (an issue opened, the open count over the
    /// threshold, Xero usage warnings). Without one, alerts are logged only.
    #[arg(long, env = "DEAD_LETTER_ALERT_WEBHOOK", hide_env_values = true)]
    pub alert_webhook: Option<SecretString>,
    /// Alert when the open entries reach this many.
    #[arg(long, env = "DEAD_LETTER_ALERT_OPEN", default_value_t = 100)]
    pub alert_open_threshold: usize,
    /// How long resolved and discarded entries are kept (open ones are never removed).
    #[arg(long, env = "DEAD_LETTER_RETENTION", default_value = "30d", value_parser = parse_days)]
    pub retention: Duration,
    /// How often the retention sweep runs.
    #[arg(long, env = "DEAD_LETTER_SWEEP_EVERY", default_value = "10m", value_parser = parse_duration)]
    pub sweep_every: Duration,
    /// Bulk replays: entries replayed per second.
    #[arg(long, env = "DEAD_LETTER_REPLAY_RATE", default_value_t = 20)]
    pub replay_rate: u32,
    /// Mapping file the writer and normalizer use, so a fix's rule is validated against it.
    #[arg(long, env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,
    /// How long to wait for the normalizer's answer to a reprocess request.
    #[arg(long, env = "DEAD_LETTER_REPROCESS_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub reprocess_timeout: Duration,
    /// The operator page's session cookie is `Secure`: `auto` when the request came over
    /// HTTPS (a TLS-terminating proxy's `X-Forwarded-Proto: https`), `always`, or `never`.
    #[arg(long, env = "DEAD_LETTER_COOKIE_SECURE", default_value = "auto")]
    pub cookie_secure: CookieSecure,
    /// How long a page session lasts.
    #[arg(long, env = "DEAD_LETTER_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// The reconciler's address as a person's browser reaches it (e.g.
    /// `http://127.0.0.1:8095`): the page links to its reconciliation report and to its view
    /// of an order.
    #[arg(long, env = "DEAD_LETTER_RECONCILER_URL")]
    pub reconciler_url: Option<String>,
    /// API base URL for the CLI subcommands.
    #[arg(
        long = "api-url",
        env = "DEAD_LETTER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// Token for the CLI subcommands.
    #[arg(long = "api-token", env = "DEAD_LETTER_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,
}

impl std::fmt::Debug for ServiceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceArgs")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("alert_open_threshold", &self.alert_open_threshold)
            .field("retention", &self.retention)
            .field("replay_rate", &self.replay_rate)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// When the page's session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CookieSecure {
    /// When the request came over HTTPS, directly or through a proxy that says so.
    Auto,
    /// Always (the page is only ever served over HTTPS).
    Always,
    /// Never (plain HTTP on a trusted network).
    Never,
}

/// Parses `30d` (days) or any duration [`parse_duration`] takes.
fn parse_days(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix('d') {
        Some(d) => d
            .parse::<u64>()
            .map(|d| Duration::from_secs(d * 86_400))
            .map_err(|_| format!("{s:?} is not a number of days")),
        None => parse_duration(s),
    }
}

/// The service's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS connection.
    pub nats: ledgerline_platform::config::NatsArgs,
    /// Where the API listens.
    pub listen: std::net::SocketAddr,
    /// API tokens; empty means "generate a one-time operator token" (loopback only).
    pub tokens: Tokens,
    /// Alert webhook.
    pub alert_webhook: Option<SecretString>,
    /// Open-count alert threshold.
    pub alert_open_threshold: usize,
    /// Kept this long once resolved or discarded.
    pub retention: Duration,
    /// Sweep interval.
    pub sweep_every: Duration,
    /// Bulk replay pace.
    pub replay_rate: u32,
    /// Mapping file for validating fixes.
    pub mapping: Option<PathBuf>,
    /// Reprocess request timeout.
    pub reprocess_timeout: Duration,
    /// The page's cookie `Secure` rule.
    pub cookie_secure: CookieSecure,
    /// Page session lifetime.
    pub session_ttl: Duration,
    /// The reconciler's address for the page's links.
    pub reconciler_url: Option<String>,
}

impl Config {
    /// Resolves flags and environment; refuses a public address without tokens.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let a = &cli.service;
        let mut raw: Vec<String> = a
            .tokens
            .iter()
            .map(|t| t.expose_secret().to_owned())
            .collect();
        if let Some(text) = resolve_secret("DEAD_LETTER_TOKENS", None, a.tokens_file.as_deref())? {
            raw.extend(
                text.expose_secret()
                    .split([';', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
        let mut list = Vec::new();
        for t in raw {
            list.push(parse_token(&t)?);
        }
        let tokens = Tokens::new(list);
        if tokens.is_empty() && !cli.common.listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "DEAD_LETTER_TOKENS",
                format!(
                    "no API tokens configured, and {} is not a loopback address: set DEAD_LETTER_TOKENS (or listen on 127.0.0.1 for a one-time token)",
                    cli.common.listen
                ),
            ));
        }
        if a.replay_rate == 0 {
            return Err(ConfigError::new(
                "DEAD_LETTER_REPLAY_RATE",
                "must be at least 1",
            ));
        }
        Ok(Self {
            nats: cli.common.nats.clone(),
            listen: cli.common.listen,
            tokens,
            alert_webhook: a.alert_webhook.clone(),
            alert_open_threshold: a.alert_open_threshold.max(1),
            retention: a.retention,
            sweep_every: a.sweep_every.max(Duration::from_secs(1)),
            replay_rate: a.replay_rate,
            mapping: a.mapping.clone(),
            reprocess_timeout: a.reprocess_timeout,
            cookie_secure: a.cookie_secure,
            session_ttl: a.session_ttl.max(Duration::from_secs(60)),
            reconciler_url: a
                .reconciler_url
                .as_deref()
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
        })
    }
}

/// Parses `ROLE:TOKEN[:STORE,STORE]`.
fn parse_token(s: &str) -> Result<Token, ConfigError> {
    let bad = |why: &str| ConfigError::new("DEAD_LETTER_TOKENS", why.to_owned());
    let mut parts = s.splitn(3, ':');
    let role = match parts.next().map(str::trim) {
        Some("viewer") => Role::Viewer,
        Some("operator") => Role::Operator,
        _ => {
            return Err(bad(
                "each token is ROLE:TOKEN[:STORES], ROLE viewer or operator",
            ));
        }
    };
    let secret = parts.next().unwrap_or("").trim();
    if secret.len() < 16 {
        return Err(bad("a token must be at least 16 characters"));
    }
    let stores = parts
        .next()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Token::new(
        role,
        SecretString::from(secret.to_owned()),
        stores,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["dead-letter"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn a_public_address_without_tokens_is_refused() {
        let e = Config::from_cli(&cli(&["--listen", "0.0.0.0:8080"])).unwrap_err();
        assert!(e.to_string().contains("DEAD_LETTER_TOKENS"), "{e}");
        assert!(Config::from_cli(&cli(&["--listen", "127.0.0.1:8080"])).is_ok());
        let c = Config::from_cli(&cli(&[
            "--listen",
            "0.0.0.0:8080",
            "--token",
            "viewer:0123456789abcdef:main,outlet",
        ]))
        .unwrap();
        assert!(!c.tokens.is_empty());
    }

    #[test]
    fn tokens_name_their_role_and_are_long_enough() {
        assert!(parse_token("admin:0123456789abcdef").is_err());
        assert!(parse_token("viewer:short").is_err());
        let t = parse_token("operator:0123456789abcdef:main").unwrap();
        assert_eq!(t.role(), Role::Operator);
        assert_eq!(t.stores(), ["main".to_owned()]);
    }

    #[test]
    fn retention_takes_days() {
        assert_eq!(parse_days("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_days("2h").unwrap(), Duration::from_secs(7_200));
    }
}
