use clap::Parser;
use dead_letter::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return ledgerline_platform::health::probe(cli.common.listen);
    }
    ledgerline_platform::tls::install_crypto_provider();
    if let Some(command) = cli.command {
        return dead_letter::cli::run(command, &cli.service).await;
    }
    let _telemetry = ledgerline_platform::telemetry::init(
        "dead-letter",
        cli.common.log_format,
        &cli.common.log_filter,
    )?;
    let config = dead_letter::Config::from_cli(&cli)?;
    let service = dead_letter::DeadLetterService::build(config).await?;
    let listener = tokio::net::TcpListener::bind(cli.common.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (LISTEN_ADDR / --listen): {e}",
                cli.common.listen
            )
        })?;
    service
        .run(listener, ledgerline_platform::shutdown::on_signal())
        .await
}
