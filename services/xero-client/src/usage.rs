//! Alerts when one of Xero's allowances runs short: a tenant's calls in the day window, or the
//! app's response bytes in the month. Each goes out as a log line, a metric and a
//! `XeroUsageAlert` on the XERO stream, once per threshold and window.

use ledgerline_contract::subjects;
use ledgerline_contract::v1::{XeroUsageAlert, XeroUsageKind};
use ledgerline_platform::publish::Publisher;

/// The thresholds alerted on, in percent of the allowance.
pub const THRESHOLDS: [u32; 2] = [80, 100];

/// The thresholds `used` passed on its way from `before` (of `allowance`).
pub fn crossed(before: u64, used: u64, allowance: u64) -> Vec<u32> {
    THRESHOLDS
        .into_iter()
        .filter(|pct| {
            let at = (allowance * u64::from(*pct)).div_ceil(100);
            allowance > 0 && before < at && used >= at
        })
        .collect()
}

/// One alert, before it is sent.
#[derive(Debug, Clone)]
pub struct Alert {
    /// What ran short.
    pub kind: XeroUsageKind,
    /// The tenant (day calls), or empty (egress).
    pub tenant: String,
    /// The app (a short hash of its client id).
    pub app: String,
    /// 80 or 100.
    pub percent: u32,
    /// Used so far in the window.
    pub used: u64,
    /// The window's allowance.
    pub allowance: u64,
    /// The window (`YYYY-MM`, or the day window's start).
    pub window: String,
    /// Work waits rather than going on.
    pub held: bool,
}

impl Alert {
    fn id(&self) -> String {
        let scope = if self.tenant.is_empty() {
            &self.app
        } else {
            &self.tenant
        };
        format!(
            "xero-usage-{}-{scope}-{}-{}",
            self.kind.as_str_name(),
            self.window,
            self.percent
        )
    }

    /// Logs it, counts it (`xero_client_usage_alerts_total{kind, percent}`) and publishes it,
    /// with a message id every replica shares.
    pub async fn raise(self, publisher: Option<&Publisher>) {
        let what = match self.kind {
            XeroUsageKind::DayCalls => "calls in Xero's day window",
            _ => "response bytes (egress) this month",
        };
        if self.percent >= 100 {
            tracing::warn!(tenant = %self.tenant, app = %self.app, used = self.used, allowance = self.allowance, held = self.held, "All of the {what} are used.");
        } else {
            tracing::warn!(tenant = %self.tenant, app = %self.app, used = self.used, allowance = self.allowance, "{}% of the {what} are used.", self.percent);
        }
        let kind = match self.kind {
            XeroUsageKind::DayCalls => "day_calls",
            _ => "egress",
        };
        metrics::counter!("xero_client_usage_alerts_total", "kind" => kind, "percent" => self.percent.to_string())
            .increment(1);
        let Some(publisher) = publisher else {
            return;
        };
        let id = self.id();
        let scope = if self.tenant.is_empty() {
            "app".to_owned()
        } else {
            self.tenant.clone()
        };
        let event = XeroUsageAlert {
            event_id: id.clone(),
            kind: self.kind as i32,
            tenant_id: self.tenant,
            app: self.app,
            percent: self.percent,
            used: self.used,
            allowance: self.allowance,
            window: self.window,
            held: self.held,
            occurred_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let subject = subjects::xero_usage(&scope, self.kind);
        publisher
            .publish_proto_retrying(subject, &id, &event, "usage alert")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_crossed_once_on_the_way_up() {
        assert_eq!(crossed(0, 799, 1000), Vec::<u32>::new());
        assert_eq!(crossed(799, 800, 1000), vec![80]);
        assert_eq!(crossed(800, 999, 1000), Vec::<u32>::new());
        assert_eq!(crossed(999, 1000, 1000), vec![100]);
        assert_eq!(crossed(0, 5000, 1000), vec![80, 100]);
        assert_eq!(crossed(0, 10, 0), Vec::<u32>::new());
    }
}
