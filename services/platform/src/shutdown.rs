//! Graceful stop on SIGTERM or SIGINT.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT. Pass clones to every task: consumers stop
/// pulling, HTTP servers stop accepting, and in-flight work finishes and is acked.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Stop signal received; finishing in-flight work.");
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long a service waits, after its HTTP server stopped, for its background tasks and the
/// last flush to NATS. With NATS unreachable a flush never completes, and a stop must not hang
/// (an orchestrator would SIGKILL it anyway, without the log line saying why).
pub const FINISH_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for `tasks`, then flushes `client`, all within `grace`; says so if it gave up.
/// Whatever was not flushed was never acknowledged, so JetStream redelivers or the sender
/// retries: nothing acknowledged is lost.
pub async fn finish(
    service: &str,
    client: &async_nats::Client,
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<()>>,
    grace: std::time::Duration,
) {
    let work = async {
        for t in tasks {
            let _ = t.await;
        }
        let _ = client.flush().await;
    };
    if tokio::time::timeout(grace, work).await.is_err() {
        tracing::warn!(
            service,
            grace_secs = grace.as_secs(),
            "Background tasks or the final flush did not finish in time (is NATS reachable?); stopping anyway."
        );
    }
}
