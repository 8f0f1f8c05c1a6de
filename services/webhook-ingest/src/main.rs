use clap::Parser;
use webhook_ingest::{Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return ledgerline_platform::health::probe(cli.common.listen);
    }
    let _telemetry = ledgerline_platform::telemetry::init(
        "webhook-ingest",
        cli.common.log_format,
        &cli.common.log_filter,
    )?;
    let config = webhook_ingest::Config::from_cli(&cli)?;
    match cli.command {
        None => {
            // Connect first: a socket that accepts while nobody serves it makes senders wait
            // for their timeout; a refused connection makes them retry at once.
            let ingest = webhook_ingest::Ingest::build(config).await?;
            let listener = tokio::net::TcpListener::bind(cli.common.listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on {} (LISTEN_ADDR / --listen): {e}",
                        cli.common.listen
                    )
                })?;
            let shutdown = ledgerline_platform::shutdown::on_signal();
            ingest.run(listener, shutdown).await
        }
        Some(Command::Resync(args)) => webhook_ingest::resync::run_command(config, args).await,
        Some(Command::Healthcheck) => unreachable!("answered before configuration"),
    }
}
