use clap::Parser;
use normalizer::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return ledgerline_platform::health::probe(cli.common.listen);
    }
    let _telemetry = ledgerline_platform::telemetry::init(
        "normalizer",
        cli.common.log_format,
        &cli.common.log_filter,
    )?;
    let config = normalizer::Config::from_cli(&cli)?;
    match cli.command {
        None => {
            let listener = tokio::net::TcpListener::bind(cli.common.listen).await?;
            let shutdown = ledgerline_platform::shutdown::on_signal();
            normalizer::Normalizer::build(config)
                .await?
                .run(listener, shutdown)
                .await
        }
        Some(Command::Replay(args)) => normalizer::replay::run_command(config, args).await,
        Some(Command::Healthcheck) => unreachable!("answered before configuration"),
    }
}
