use clap::Parser;
use ledgerline_demo::{Options, Stack};
use std::time::Duration;

/// Runs Ledgerline end to end on this machine: a nats-server, xero-sandbox, webhook-ingest,
/// normalizer and xero-writer, fed by clarity-sim; shows live progress and ties Xero out
/// against the store. Ctrl-C stops everything.
#[derive(Debug, Parser)]
#[command(name = "ledgerline-demo", version)]
struct Cli {
    #[command(flatten)]
    options: Options,
    /// Keep the stack running after the summary, until Ctrl-C.
    #[arg(long, default_value_t = false)]
    keep_running: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let run = async {
        let stack = Stack::start(&cli.options).await?;
        println!("{}", stack.describe());
        let truth = stack.send_orders(&cli.options).await?;
        let outcome = stack
            .wait_converged(&truth, Duration::from_secs(cli.options.timeout_secs), |p| {
                println!("{p}")
            })
            .await?;
        println!("\n{outcome}");
        let calls = stack.xero_calls().await?;
        println!("{}", calls.report(cli.options.orders));
        if stack.reconciler.is_some() {
            match stack.reconciliation(&truth).await {
                Ok(r) => print!("\n{r}"),
                Err(e) => println!("\nThe reconciliation report could not be read: {e:#}"),
            }
            if let Some(url) = stack.report_url() {
                println!(
                    "  The page, with its chart: {url} (token {})",
                    stack.operator_token
                );
            }
        }
        let review = stack.dead_letters().await?;
        if !review.is_empty() {
            println!("\nIn review ({}):", review.len());
            for (subject, error) in review.iter().take(20) {
                println!("  {subject}: {error}");
            }
            if let Some(url) = stack.page_url() {
                println!(
                    "Fix them on the operator page: {url} (token {}).{}",
                    stack.operator_token,
                    if cli.keep_running {
                        ""
                    } else {
                        " Run with --keep-running to leave the stack up for that."
                    }
                );
            }
        }
        if cli.keep_running {
            println!("\nStack still running; Ctrl-C to stop. Things to try:");
            if let Some(url) = stack.report_url() {
                println!(
                    "  - the reconciliation report: {url} (the same token): every day's orders against Xero, every cent explained"
                );
            }
            if let Some(url) = stack.page_url() {
                println!(
                    "  - the review queue: {url} (sign in with {}); open an issue, press \"Apply suggestion and replay\", and watch the order reach Xero",
                    stack.operator_token
                );
                println!("  - an order's story: {url}/orders");
            }
            println!(
                "  - Xero's side: {}/admin/tenants (bearer sandbox-admin)",
                stack.sandbox.base_url()
            );
            std::future::pending::<()>().await;
        }
        anyhow::Ok(outcome.ok())
    };
    tokio::select! {
        r = run => {
            let ok = r?;
            println!("Stopping.");
            if !ok { std::process::exit(1); }
        }
        _ = tokio::signal::ctrl_c() => println!("\nCtrl-C: stopping everything."),
    }
    Ok(())
}
