use clap::Parser;
use ledgerline_ops::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry =
        ledgerline_platform::telemetry::init("ledgerline", cli.log_format, &cli.log_filter)?;
    ledgerline_ops::run(cli).await
}
