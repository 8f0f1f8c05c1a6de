//! webhook-ingest configuration: flags and environment, over the optional TOML file, over the
//! embedded defaults.

use clap::{Args, Parser, Subcommand};
use ledgerline_platform::config::{
    CommonArgs, ConfigError, FileConfig, parse_duration, resolve_secret,
};
use ledgerline_platform::standard_webhooks::Secret;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The demo store's signing secret, used only when no store is configured at all (a warning
/// says so at start). clarity-sim's `send` uses the same default.
pub const DEMO_SECRET: &str = "whsec_bGVkZ2VybGluZS1kZW1vLXNlY3JldC0x";
/// The demo store's name.
pub const DEMO_STORE: &str = "main";

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "webhook-ingest",
    version,
    about = "Receives signed Clarity webhooks and stores them in the RAW stream before answering 2xx."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; none means "serve".
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Page through a store's REST API and store every order as a `sales_order.updated` event.
    Resync(ResyncArgs),
    /// Ask the running service's `/readyz` on its listen address; exit 0 when ready (the
    /// container healthcheck: no curl in the image).
    Healthcheck,
}

/// `resync` flags.
#[derive(Debug, Clone, Args)]
pub struct ResyncArgs {
    /// Store to resync.
    #[arg(long)]
    pub store: String,
    /// Only orders modified at or after this instant (RFC 3339, or a date YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Hide the progress bar.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}

/// Flags of the service itself.
#[derive(Clone, Args)]
pub struct IngestArgs {
    /// A store and its live secrets, `NAME=SECRET[,SECRET...]` (repeatable). The environment
    /// form separates stores with `;`: `main=whsec_a,whsec_b;outlet=whsec_c`.
    #[arg(
        long = "store",
        env = "INGEST_STORES",
        value_delimiter = ';',
        hide_env_values = true,
        value_name = "NAME=SECRET[,SECRET...]"
    )]
    pub stores: Vec<SecretString>,
    /// A file holding the `INGEST_STORES` value.
    #[arg(long = "stores-file", env = "INGEST_STORES_FILE")]
    pub stores_file: Option<PathBuf>,
    /// Largest body accepted, in bytes (suffixes KiB, MiB allowed).
    #[arg(long, env = "INGEST_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Accepted clock skew of `webhook-timestamp`, either way.
    #[arg(long, env = "INGEST_TOLERANCE", default_value = "300s", value_parser = parse_duration)]
    pub tolerance: Duration,
    /// Bearer token for the operator endpoints (`/resync`). Without one they answer 403.
    #[arg(long, env = "INGEST_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<SecretString>,
    /// A file holding the operator token.
    #[arg(long, env = "INGEST_OPERATOR_TOKEN_FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// How long to wait for JetStream's acknowledgement before answering 503.
    #[arg(long, env = "INGEST_PUBLISH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// `Retry-After` (seconds) sent with a 503.
    #[arg(long, env = "INGEST_RETRY_AFTER", default_value_t = 5)]
    pub retry_after: u64,
    /// A store's REST API base URL for resync, `NAME=URL` (repeatable; `;` in the environment).
    #[arg(
        long = "store-api",
        env = "INGEST_STORE_API",
        value_delimiter = ';',
        value_name = "NAME=URL"
    )]
    pub store_api: Vec<String>,
    /// A store's REST API credentials, `NAME=USER:PASSWORD` (repeatable; `;` in the environment).
    #[arg(
        long = "store-api-credentials",
        env = "INGEST_STORE_API_CREDENTIALS",
        value_delimiter = ';',
        hide_env_values = true
    )]
    pub store_api_credentials: Vec<SecretString>,
}

impl std::fmt::Debug for IngestArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestArgs")
            .field("stores", &format_args!("[{} redacted]", self.stores.len()))
            .field("max_body", &self.max_body)
            .field("tolerance", &self.tolerance)
            .field("store_api", &self.store_api)
            .finish_non_exhaustive()
    }
}

/// Parses `1048576`, `512KiB`, `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1024)
    } else {
        (t, 1)
    };
    num.trim()
        .parse::<usize>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not a size (e.g. 1048576, 512KiB, 1MiB)"))
}

/// One store's REST API, for resync.
#[derive(Debug, Clone)]
pub struct StoreApi {
    /// Base URL.
    pub url: String,
    /// Basic-auth user.
    pub user: String,
    /// Basic-auth password.
    pub password: SecretString,
}

/// One configured store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Live signing secrets (several during a rotation).
    pub secrets: Vec<Secret>,
    /// REST API for resync.
    pub api: Option<StoreApi>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS settings.
    pub nats: ledgerline_platform::config::NatsArgs,
    /// Stores by name.
    pub stores: BTreeMap<String, StoreConfig>,
    /// Body limit in bytes.
    pub max_body: usize,
    /// Timestamp tolerance in seconds.
    pub tolerance_secs: i64,
    /// Operator bearer token.
    pub operator_token: Option<SecretString>,
    /// PubAck timeout.
    pub publish_timeout: Duration,
    /// Seconds in `Retry-After`.
    pub retry_after: u64,
    /// Where the stores came from, for SIGHUP reloads.
    pub reload: ReloadSource,
}

/// What a reload re-reads.
#[derive(Debug, Clone)]
pub struct ReloadSource {
    config_file: Option<PathBuf>,
    args: IngestArgs,
}

impl ReloadSource {
    /// Re-reads the file (and the secrets files) and rebuilds the store table.
    pub fn load_stores(&self) -> Result<BTreeMap<String, StoreConfig>, ConfigError> {
        let file = FileConfig::load(self.config_file.as_deref())?;
        stores_from(&self.args, &file)
    }
}

impl Config {
    /// Validates the command line against the file; errors name the flag, variable or key.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let file = FileConfig::load(cli.common.config_file.as_deref())?;
        let stores = stores_from(&cli.ingest, &file)?;
        let operator_token = resolve_secret(
            "INGEST_OPERATOR_TOKEN",
            cli.ingest.operator_token.clone(),
            cli.ingest.operator_token_file.as_deref(),
        )?;
        if cli.ingest.max_body == 0 {
            return Err(ConfigError::new(
                "INGEST_MAX_BODY (--max-body)",
                "must be above zero",
            ));
        }
        Ok(Self {
            nats: cli.common.nats.clone(),
            stores,
            max_body: cli.ingest.max_body,
            tolerance_secs: cli.ingest.tolerance.as_secs() as i64,
            operator_token,
            publish_timeout: cli.ingest.publish_timeout,
            retry_after: cli.ingest.retry_after.max(1),
            reload: ReloadSource {
                config_file: cli.common.config_file.clone(),
                args: cli.ingest.clone(),
            },
        })
    }
}

const STORES_KEY: &str = "INGEST_STORES (--store)";

fn stores_from(
    args: &IngestArgs,
    file: &FileConfig,
) -> Result<BTreeMap<String, StoreConfig>, ConfigError> {
    let mut stores = BTreeMap::new();
    for (name, s) in &file.stores {
        let key = format!("stores.{name}.webhook_secrets");
        let secrets = s
            .webhook_secrets
            .iter()
            .map(|w| {
                Secret::parse(w.expose_secret()).map_err(|e| ConfigError::new(&key, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let api = match (&s.api_url, &s.api_user, &s.api_password) {
            (Some(url), Some(user), Some(password)) => Some(StoreApi {
                url: url.clone(),
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    format!("stores.{name}"),
                    "api_url, api_user and api_password go together",
                ));
            }
        };
        stores.insert(name.clone(), StoreConfig { secrets, api });
    }
    // An empty variable (`INGEST_STORES=`, as compose passes an unset one) means none.
    let mut entries: Vec<SecretString> = args
        .stores
        .iter()
        .filter(|s| !s.expose_secret().trim().is_empty())
        .cloned()
        .collect();
    if let Some(path) = &args.stores_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "INGEST_STORES_FILE",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        entries.extend(
            text.split(';')
                .filter(|s| !s.trim().is_empty())
                .map(|s| SecretString::from(s.trim().to_owned())),
        );
    }
    for entry in &entries {
        let (name, secrets) = parse_store_entry(entry.expose_secret())?;
        let slot = stores.entry(name).or_insert(StoreConfig {
            secrets: vec![],
            api: None,
        });
        slot.secrets = secrets;
    }
    for entry in &args.store_api {
        let (name, url) = entry.split_once('=').ok_or_else(|| {
            ConfigError::new("INGEST_STORE_API (--store-api)", "expected NAME=URL")
        })?;
        let store = stores.get_mut(name).ok_or_else(|| {
            ConfigError::new(
                "INGEST_STORE_API (--store-api)",
                format!("store {name:?} is not configured"),
            )
        })?;
        let creds = args.store_api_credentials.iter().find_map(|c| {
            let (n, rest) = c.expose_secret().split_once('=')?;
            (n == name).then(|| rest.to_owned())
        });
        let (user, password) = creds
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .ok_or_else(|| {
                ConfigError::new(
                    "INGEST_STORE_API_CREDENTIALS (--store-api-credentials)",
                    format!("store {name:?} needs NAME=USER:PASSWORD"),
                )
            })?;
        store.api = Some(StoreApi {
            url: url.to_owned(),
            user: user.to_owned(),
            password: SecretString::from(password.to_owned()),
        });
    }
    if stores.is_empty() {
        tracing::warn!(
            store = DEMO_STORE,
            "No store configured: serving the demo store with the public demo secret. Configure --store for real use."
        );
        let secret =
            Secret::parse(DEMO_SECRET).map_err(|e| ConfigError::new(STORES_KEY, e.to_string()))?;
        stores.insert(
            DEMO_STORE.to_owned(),
            StoreConfig {
                secrets: vec![secret],
                api: None,
            },
        );
    }
    for (name, store) in &stores {
        if store.secrets.is_empty() {
            return Err(ConfigError::new(
                STORES_KEY,
                format!("store {name:?} has no webhook secret"),
            ));
        }
    }
    Ok(stores)
}

/// Splits `NAME=SECRET[,SECRET...]` on the first `=` (secrets end in `=`) and validates both.
/// Errors never echo a secret.
pub fn parse_store_entry(entry: &str) -> Result<(String, Vec<Secret>), ConfigError> {
    let (name, secrets) = entry
        .trim()
        .split_once('=')
        .ok_or_else(|| ConfigError::new(STORES_KEY, "expected NAME=SECRET[,SECRET...]"))?;
    let name = name.trim();
    if !ledgerline_contract::is_valid_token(name) {
        return Err(ConfigError::new(
            STORES_KEY,
            format!("store name {name:?}: use lower-case letters, digits, '-' and '_'"),
        ));
    }
    let secrets = secrets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            Secret::parse(s).map_err(|e| {
                ConfigError::new(
                    STORES_KEY,
                    format!("store {name:?}, secret #{}: {e}", i + 1),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err(ConfigError::new(
            STORES_KEY,
            format!("store {name:?} has no secret"),
        ));
    }
    Ok((name.to_owned(), secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_entries() {
        let (name, secrets) =
            parse_store_entry(&format!("main={DEMO_SECRET},{DEMO_SECRET}")).unwrap();
        assert_eq!(name, "main");
        assert_eq!(secrets.len(), 2);
        let err = parse_store_entry("Main=whsec_abc").unwrap_err().to_string();
        assert!(
            err.contains("INGEST_STORES") && err.contains("Main"),
            "{err}"
        );
        let err = parse_store_entry("main=notasecret")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("secret #1") && !err.contains("notasecret"),
            "{err}"
        );
        assert!(parse_store_entry("main").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }
}
