use clap::Parser;
use reconciler::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return ledgerline_platform::health::probe(cli.common.listen);
    }
    let _telemetry = ledgerline_platform::telemetry::init(
        "reconciler",
        cli.common.log_format,
        &cli.common.log_filter,
    )?;
    let config = reconciler::Config::from_cli(&cli)?;
    match cli.command {
        None => {
            let listener = tokio::net::TcpListener::bind(cli.common.listen).await?;
            let shutdown = ledgerline_platform::shutdown::on_signal();
            reconciler::Reconciler::build(config)
                .await?
                .run(listener, shutdown)
                .await
        }
        Some(Command::Rebuild(args)) => reconciler::rebuild::run_command(config, args).await,
        Some(Command::Report(args)) => reconciler::report::run_command(config, args).await,
        Some(Command::Healthcheck) => unreachable!("answered before configuration"),
    }
}
