//! normalizer configuration: flags and environment, over `[normalizer]` in the optional TOML
//! file, over the embedded defaults.

use clap::{Args, Parser, Subcommand};
use ledgerline_platform::config::{CommonArgs, ConfigError, FileConfig, parse_duration};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "normalizer",
    version,
    about = "Turns raw Clarity webhooks (RAW) into canonical order, customer and refund events, by a declarative mapping."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub normalizer: NormalizerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; none means "serve".
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Re-normalise RAW history of a store under the current mapping.
    Replay(ReplayArgs),
    /// Ask the running service's `/readyz` on its listen address; exit 0 when ready (the
    /// container healthcheck: no curl in the image).
    Healthcheck,
}

/// `replay` flags.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Store to replay.
    #[arg(long)]
    pub store: String,
    /// Start at this instant (RFC 3339, or a date YYYY-MM-DD).
    #[arg(
        long,
        conflicts_with = "from_seq",
        required_unless_present = "from_seq"
    )]
    pub since: Option<String>,
    /// Start at this RAW stream sequence.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Print what would change as a diff of canonical events; publish nothing.
    #[arg(long, default_value_t = false)]
    pub dry_run: bool,
    /// Hide the progress bar.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}

/// Flags of the service itself.
#[derive(Debug, Clone, Args)]
pub struct NormalizerArgs {
    /// The mapping file (TOML; see deploy/mapping.example.toml). Without one, the embedded
    /// defaults apply (plus the KV overlay).
    #[arg(long = "mapping", env = "MAPPING_FILE", global = true)]
    pub mapping: Option<PathBuf>,
    /// Raw events handled at once.
    #[arg(long, env = "NORMALIZER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// How long to wait for JetStream's acknowledgement of a publish.
    #[arg(long, env = "NORMALIZER_PUBLISH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// Redelivery delays after a transient failure, by attempt (the last repeats).
    #[arg(long, env = "NORMALIZER_RETRY_DELAYS", value_delimiter = ',', default_value = "1s,5s,30s,2m", value_parser = parse_duration)]
    pub retry_delays: Vec<Duration>,
    /// How often the mapping file's modification time is checked.
    #[arg(long, env = "MAPPING_POLL", default_value = "2s", value_parser = parse_duration)]
    pub mapping_poll: Duration,
}

/// `[normalizer]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizerFile {
    /// Mapping file path.
    pub mapping: Option<PathBuf>,
    /// Handlers at once.
    pub concurrency: Option<usize>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS settings.
    pub nats: ledgerline_platform::config::NatsArgs,
    /// Mapping file.
    pub mapping: Option<PathBuf>,
    /// Handlers at once.
    pub concurrency: usize,
    /// PubAck timeout.
    pub publish_timeout: Duration,
    /// Nak delays by attempt.
    pub retry_delays: Vec<Duration>,
    /// Mapping file poll interval.
    pub mapping_poll: Duration,
}

impl Config {
    /// Validates the command line against the file; errors name the flag, variable or key.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let file = FileConfig::load(cli.common.config_file.as_deref())?;
        let section: NormalizerFile = file.section("normalizer")?;
        let concurrency = cli
            .normalizer
            .concurrency
            .or(section.concurrency)
            .unwrap_or(32);
        if concurrency == 0 {
            return Err(ConfigError::new(
                "NORMALIZER_CONCURRENCY (--concurrency)",
                "must be above zero",
            ));
        }
        if cli.normalizer.retry_delays.is_empty() {
            return Err(ConfigError::new(
                "NORMALIZER_RETRY_DELAYS (--retry-delays)",
                "needs at least one delay",
            ));
        }
        Ok(Self {
            nats: cli.common.nats.clone(),
            // One mapping for every store for now: the flag, then `[normalizer]`, then the first
            // store that names one (the writer resolves it the same way).
            mapping: cli
                .normalizer
                .mapping
                .clone()
                .or(section.mapping)
                .or_else(|| file.stores.values().find_map(|s| s.mapping.clone())),
            concurrency,
            publish_timeout: cli.normalizer.publish_timeout,
            retry_delays: cli.normalizer.retry_delays.clone(),
            mapping_poll: cli.normalizer.mapping_poll,
        })
    }

    /// Defaults for in-process use (tests, benchmarks).
    pub fn local(nats_url: &str) -> Self {
        let cli = Cli::parse_from(["normalizer", "--nats-url", nats_url]);
        Self::from_cli(&cli).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_from_flag_section_or_store() {
        let dir = std::env::temp_dir().join(format!("normalizer-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ledgerline.toml");
        std::fs::write(
            &file,
            "[stores.main]\nmapping = \"/etc/ledgerline/main.toml\"\n[normalizer]\nconcurrency = 4\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_cli(&Cli::parse_from(["normalizer", "--config", path])).unwrap();
        assert_eq!(
            c.mapping.as_deref(),
            Some(std::path::Path::new("/etc/ledgerline/main.toml"))
        );
        assert_eq!(c.concurrency, 4);
        let c = Config::from_cli(&Cli::parse_from([
            "normalizer",
            "--config",
            path,
            "--mapping",
            "m.toml",
        ]))
        .unwrap();
        assert_eq!(c.mapping.as_deref(), Some(std::path::Path::new("m.toml")));
        std::fs::write(&file, "[normalizer]\nconcurency = 4\n").unwrap();
        let err = Config::from_cli(&Cli::parse_from(["normalizer", "--config", path])).unwrap_err();
        assert!(err.to_string().contains("[normalizer]"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
