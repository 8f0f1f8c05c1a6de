use clap::Parser;
use xero_writer::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return ledgerline_platform::health::probe(cli.common.listen);
    }
    let _telemetry = ledgerline_platform::telemetry::init(
        "xero-writer",
        cli.common.log_format,
        &cli.common.log_filter,
    )?;
    let config = xero_writer::Config::from_cli(&cli)?;
    match cli.command {
        None => {
            let listener = tokio::net::TcpListener::bind(cli.common.listen).await?;
            let shutdown = ledgerline_platform::shutdown::on_signal();
            xero_writer::Writer::build(config)
                .await?
                .run(listener, shutdown)
                .await
        }
        Some(Command::Connect(args)) => xero_writer::connect::run_command(config, args).await,
        Some(Command::Healthcheck) => unreachable!("answered before configuration"),
    }
}
