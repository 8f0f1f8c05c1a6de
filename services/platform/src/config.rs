//! Configuration shared by every service: flags, environment variables, one optional TOML file,
//! and secrets that may come from `*_FILE` paths.
//!
//! Precedence, highest first: a flag, its environment variable, the TOML file, the embedded
//! default. Every service starts on the defaults with nothing but `NATS_URL` and `--listen`.
//! Errors name the flag or variable (or the file and key) so a bad setting fails fast at start.

use clap::{Args, ValueEnum};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    /// The flag, variable, or `file:key` at fault.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// A new error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags every service takes. Flatten into the service's own `clap::Parser`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// HTTP address for the service's API and `/healthz`, `/readyz`, `/metrics`.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Optional TOML configuration file (stores, Xero, NATS).
    #[arg(long = "config", env = "LEDGERLINE_CONFIG")]
    pub config_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// How long a graceful stop may take before in-flight work is abandoned (it is redelivered).
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub nats: NatsArgs,
}

/// NATS connection flags.
#[derive(Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// User name (with `--nats-password`).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<SecretString>,
    /// File holding the password.
    #[arg(long = "nats-password-file", env = "NATS_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Token.
    #[arg(long = "nats-token", env = "NATS_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
    /// File holding the token.
    #[arg(long = "nats-token-file", env = "NATS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// NKey seed.
    #[arg(
        long = "nats-nkey-seed",
        env = "NATS_NKEY_SEED",
        hide_env_values = true
    )]
    pub nkey_seed: Option<SecretString>,
    /// File holding the NKey seed.
    #[arg(long = "nats-nkey-seed-file", env = "NATS_NKEY_SEED_FILE")]
    pub nkey_seed_file: Option<PathBuf>,
    /// Credentials (.creds) file.
    #[arg(long = "nats-creds", env = "NATS_CREDS_FILE")]
    pub creds_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for the server.
    #[arg(long = "nats-tls-ca", env = "NATS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long = "nats-tls-cert", env = "NATS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long = "nats-tls-key", env = "NATS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require TLS.
    #[arg(
        long = "nats-tls-required",
        env = "NATS_TLS_REQUIRED",
        default_value_t = false
    )]
    pub tls_required: bool,
    /// Replicas for streams and buckets this service creates (3 in a cluster).
    #[arg(long = "nats-replicas", env = "NATS_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// Multiplies every stream's default size limit (the same value on every service: each
    /// one applies the topology, and the last to start wins).
    #[arg(
        long = "nats-stream-size-factor",
        env = "NATS_STREAM_SIZE_FACTOR",
        default_value_t = 1
    )]
    pub stream_size_factor: u32,
    /// How long to keep trying to reach NATS at start-up before giving up.
    #[arg(long = "nats-connect-timeout", env = "NATS_CONNECT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

impl NatsArgs {
    /// The stream limits every service applies.
    pub fn limits(&self) -> ledgerline_contract::streams::Limits {
        ledgerline_contract::streams::Limits {
            replicas: self.replicas.max(1),
            max_bytes_factor: self.stream_size_factor.max(1),
        }
    }
}

impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SecretString already redacts; listed explicitly so a new field cannot leak by accident.
        f.debug_struct("NatsArgs")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "[REDACTED]"))
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_required", &self.tls_required)
            .field("replicas", &self.replicas)
            .field("stream_size_factor", &self.stream_size_factor)
            .finish_non_exhaustive()
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Picks a secret from its value or its `*_FILE` path; giving both is an error.
///
/// `name` is the variable (or flag) name used in the error.
pub fn resolve_secret(
    name: &str,
    value: Option<SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            name,
            format!("set either {name} or {name}_FILE, not both"),
        )),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    format!("{name}_FILE"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.is_empty() {
                return Err(ConfigError::new(
                    format!("{name}_FILE"),
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(SecretString::from(text)))
        }
        (None, None) => Ok(None),
    }
}

/// The optional TOML file. Each service reads the parts it needs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// NATS settings that the flags did not set.
    #[serde(default)]
    pub nats: Option<NatsFile>,
    /// Stores by name.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreFile>,
    /// Xero connection.
    #[serde(default)]
    pub xero: Option<XeroFile>,
    /// `[ingest]`: webhook-ingest's own settings (see [`FileConfig::section`]).
    #[serde(default)]
    pub ingest: Option<toml::Table>,
    /// `[normalizer]`.
    #[serde(default)]
    pub normalizer: Option<toml::Table>,
    /// `[writer]`.
    #[serde(default)]
    pub writer: Option<toml::Table>,
    /// `[reconciler]`.
    #[serde(default)]
    pub reconciler: Option<toml::Table>,
    /// `[dead_letter]`.
    #[serde(default)]
    pub dead_letter: Option<toml::Table>,
}

/// `[nats]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFile {
    /// Server URL(s).
    pub url: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub password: Option<SecretString>,
    /// Credentials file.
    pub creds_file: Option<PathBuf>,
}

/// `[stores.<name>]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// Live webhook signing secrets (`whsec_...`); several during a rotation.
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
    /// The store's REST API base URL (for resync).
    pub api_url: Option<String>,
    /// REST API user (Basic auth).
    pub api_user: Option<String>,
    /// REST API password.
    pub api_password: Option<SecretString>,
    /// The Xero tenant this store posts to.
    pub tenant: Option<String>,
    /// The mapping file for this store.
    pub mapping: Option<PathBuf>,
}

/// `[xero]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroFile {
    /// Identity host base URL.
    pub identity_url: Option<String>,
    /// Accounting API base URL.
    pub api_url: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<SecretString>,
    /// `client_credentials` or `authorization_code`.
    pub grant_type: Option<String>,
}

impl FileConfig {
    /// Reads the file if one is configured; no file means all defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "LEDGERLINE_CONFIG (--config)",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Self::parse(&text, path)
    }

    /// Parses file text; errors name the file and the key.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| line_col(text, s.start))
                .unwrap_or_default();
            ConfigError::new(format!("{}{key}", path.display()), e.message().to_owned())
        })?;
        for name in cfg.stores.keys() {
            if !ledgerline_contract::is_valid_token(name) {
                return Err(ConfigError::new(
                    format!("{}: stores.{name}", path.display()),
                    "store names are lower-case letters, digits, '-' and '_'",
                ));
            }
        }
        Ok(cfg)
    }

    /// A service-specific section (`ingest`, `normalizer`, `writer`, `reconciler`,
    /// `dead_letter`) deserialized into the service's own schema; absent means defaults.
    pub fn section<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        let table = match name {
            "ingest" => &self.ingest,
            "normalizer" => &self.normalizer,
            "writer" => &self.writer,
            "reconciler" => &self.reconciler,
            "dead_letter" => &self.dead_letter,
            other => return Err(ConfigError::new(format!("[{other}]"), "no such section")),
        };
        match table {
            None => Ok(T::default()),
            Some(t) => t.clone().try_into().map_err(|e: toml::de::Error| {
                ConfigError::new(format!("[{name}]"), e.message().to_owned())
            }),
        }
    }
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    format!(":{line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn secret_from_file_and_conflict() {
        let dir = std::env::temp_dir().join(format!("ll-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let s = resolve_secret("NATS_PASSWORD", None, Some(&f))
            .unwrap()
            .unwrap();
        assert_eq!(s.expose_secret(), "hunter2");
        let err = resolve_secret("NATS_PASSWORD", Some("x".into()), Some(&f)).unwrap_err();
        assert!(err.to_string().contains("NATS_PASSWORD"));
        let err = resolve_secret("NATS_PASSWORD", None, Some(&dir.join("missing"))).unwrap_err();
        assert!(err.to_string().contains("NATS_PASSWORD_FILE"));
    }

    #[test]
    fn file_errors_name_file_and_key() {
        let p = Path::new("ledgerline.toml");
        let err = FileConfig::parse("[stores.main]\nwebhook_secret = 'x'\n", p).unwrap_err();
        assert!(err.to_string().contains("ledgerline.toml"), "{err}");
        assert!(err.to_string().contains("webhook_secret"), "{err}");
        let err = FileConfig::parse("[stores.Main]\n", p).unwrap_err();
        assert!(err.to_string().contains("stores.Main"), "{err}");
        let ok = FileConfig::parse(
            "[stores.main]\nwebhook_secrets = ['whsec_abc']\n[ingest]\nmax_body = 5\n",
            p,
        )
        .unwrap();
        assert_eq!(ok.stores["main"].webhook_secrets.len(), 1);
        assert!(format!("{ok:?}").contains("REDACTED") || !format!("{ok:?}").contains("whsec_abc"));
        #[derive(Debug, Default, serde::Deserialize)]
        struct Ingest {
            max_body: u32,
        }
        assert_eq!(ok.section::<Ingest>("ingest").unwrap().max_body, 5);
        assert!(
            FileConfig::parse("[ingset]\n", p)
                .unwrap_err()
                .to_string()
                .contains("ingset")
        );
    }
}
