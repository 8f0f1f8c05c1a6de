//! Alerts on a Slack-compatible webhook (`{"text": ...}`): an issue opened, the open count over
//! its threshold, and the writer's Xero budget and egress warnings.

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sends alerts; without a webhook they are logged only.
#[derive(Debug, Clone)]
pub struct Alerts {
    url: Option<SecretString>,
    http: reqwest::Client,
    threshold: usize,
    over: Arc<AtomicBool>,
}

impl Alerts {
    /// Alerts to `url`, with the open-count `threshold`.
    pub fn new(url: Option<SecretString>, threshold: usize) -> Self {
        Self {
            url,
            http: ledgerline_platform::tls::http_client("ledgerline-dead-letter")
                .expect("an HTTP client"),
            threshold,
            over: Arc::default(),
        }
    }

    /// A new issue has its first open entry.
    pub async fn issue_opened(&self, issue: &str, key: &str, store: &str, error: &str) {
        self.send(
            "issue_opened",
            format!(
                ":rotating_light: New review-queue issue `{key}` ({issue}) in store `{store}`: {error}"
            ),
        )
        .await;
    }

    /// Called with the open count after a change; alerts once per crossing upwards.
    pub async fn open_count(&self, open: usize) {
        if open >= self.threshold {
            if !self.over.swap(true, Ordering::SeqCst) {
                self.send(
                    "open_threshold",
                    format!(
                        ":warning: {open} entries are open in the review queue (threshold {}).",
                        self.threshold
                    ),
                )
                .await;
            }
        } else {
            self.over.store(false, Ordering::SeqCst);
        }
    }

    /// Passes on the writer's Xero usage warning.
    pub async fn usage(&self, text: String) {
        self.send("xero_usage", text).await;
    }

    async fn send(&self, kind: &'static str, text: String) {
        tracing::warn!(kind, alert = %text, "Alert.");
        metrics::counter!("dead_letter_alerts_total", "kind" => kind).increment(1);
        let Some(url) = &self.url else { return };
        let body = serde_json::json!({ "text": text });
        // Best effort, a few tries: an alert must not hold up the queue.
        for attempt in 0..3u32 {
            match self.http.post(url.expose_secret()).json(&body).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(status = %r.status(), "Alert webhook refused the alert."),
                Err(e) => tracing::warn!(error = %e.without_url(), "Alert webhook unreachable."),
            }
            tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
        }
        metrics::counter!("dead_letter_alert_failures_total").increment(1);
    }
}
