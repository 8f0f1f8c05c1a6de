//! `xero-sandbox`: parses flags, builds the sandbox, serves until SIGTERM/SIGINT.

use clap::Parser;
use xero_sandbox::{Config, Sandbox};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if config.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let sandbox = Sandbox::build(config.clone())?;
    println!("xero-sandbox listening on http://{addr}");
    println!("  API base URL:   http://{addr}/api.xro/2.0");
    println!(
        "  identity:       http://{addr}/connect/token  (consent shortcut: /identity/authorize)"
    );
    println!("  client id:      {}", config.client_id);
    println!("  client secret:  {}", config.client_secret);
    println!(
        "  admin:          http://{addr}/admin  (Authorization: Bearer {})",
        config.admin_token
    );
    for (i, t) in sandbox.tenant_ids().iter().enumerate() {
        println!("  tenant {}:       {t}", i + 1);
    }
    sandbox.run(listener, shutdown_signal()).await?;
    tracing::info!("Stopped.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
