//! `xero-sandbox`: parses flags, builds the sandbox, serves until SIGTERM/SIGINT.

use clap::Parser;
use xero_sandbox::{Config, Sandbox};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `xero-sandbox healthcheck`: the container healthcheck (no curl in the image).
    ledgerline_platform::health::exit_if_asked("127.0.0.1:5080");
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
    let shutdown = shutdown_signal()?;
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
    sandbox.run(listener, shutdown).await?;
    tracing::info!("Stopped.");
    Ok(())
}

/// Registers the signal handlers now (so a signal right after start-up is not lost) and
/// returns a future that resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
