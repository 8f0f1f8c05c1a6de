//! `ledgerline`: the operator's command for what no one service owns.
//!
//! - `ledgerline backup --out DIR`: every stream on the server (the pipeline's streams, the KV
//!   buckets behind `KV_*`, and any subscriber's), message by message with subjects and headers,
//!   plus each stream's configuration and its durable consumers' positions.
//! - `ledgerline restore --from DIR`: the same streams, configurations and consumer positions
//!   on another (or a wiped) server, so the services carry on where they were.

pub mod archive;
pub mod backup;
pub mod restore;

use clap::{Parser, Subcommand};
use ledgerline_platform::config::{LogFormat, NatsArgs};
use std::path::PathBuf;

/// `ledgerline`: backups and restores of Ledgerline's NATS state.
#[derive(Debug, Parser)]
#[command(name = "ledgerline", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Log format (logs go to stderr; stdout is the command's output).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "warn", global = true)]
    pub log_filter: String,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every stream and KV bucket, with configurations and durable consumers' positions,
    /// into a directory (made if missing; must be empty).
    Backup {
        /// Where the backup goes.
        #[arg(long)]
        out: PathBuf,
        /// Only these streams (repeatable; `KV_<bucket>` for a bucket). Default: all.
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// A summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recreate the streams of a backup, their messages in order, and their durable consumers
    /// at the positions they had. Refuses a stream that already holds messages unless
    /// `--replace`.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// Delete a stream that already exists and holds messages, then restore it.
        #[arg(long)]
        replace: bool,
        /// A summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = ledgerline_platform::nats::connect(&cli.nats, "ledgerline-ops").await?;
    let js = async_nats::jetstream::new(client.clone());
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Backup {
            out: dir,
            streams,
            json,
        } => {
            let server = client.server_info().version.clone();
            let m = backup::backup(&js, &dir, &streams, &server, progress).await?;
            let mut summary = m.summary();
            summary.dir = dir.display().to_string();
            archive::print(&mut out, &summary, json)?;
        }
        Command::Restore {
            from,
            replace,
            json,
        } => {
            let s = restore::restore(&js, &from, replace, progress).await?;
            archive::print(&mut out, &s, json)?;
        }
    }
    client.flush().await?;
    Ok(())
}
