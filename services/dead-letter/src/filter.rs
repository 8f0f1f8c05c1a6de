//! Which entries a list, an export or a bulk replay covers.

use crate::auth::Caller;
use crate::entry::{Status, Summary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Filters; every one given must match. Times are RFC 3339 and bound `last_seen`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Filter {
    /// Store.
    pub store: Option<String>,
    /// Stage: `normalizer`, `xero_writer`, ...
    pub stage: Option<String>,
    /// Reason class: `mapping`, `invalid`, `xero_validation`, ...
    pub reason: Option<String>,
    /// Fault code, e.g. `unknown_tax_code`.
    pub fault: Option<String>,
    /// Status; `open` also covers `acknowledged`.
    pub status: Option<Status>,
    /// Issue id.
    pub issue: Option<String>,
    /// Last seen at or after (RFC 3339).
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Last seen before (RFC 3339).
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Text in the order number, customer, entity, error or id.
    pub q: Option<String>,
}

impl Filter {
    /// Checks the times parse, so a typo is a 400 rather than an empty list.
    pub fn validate(&self) -> Result<(), String> {
        for (name, t) in [("from", &self.from), ("to", &self.to)] {
            if let Some(t) = t {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| format!("{name}: {t:?} is not RFC 3339 ({e})"))?;
            }
        }
        Ok(())
    }

    /// Whether `e` is covered, for `caller`.
    pub fn matches(&self, e: &Summary, caller: &Caller) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        caller.sees(&e.store)
            && eq(&self.store, &e.store)
            && eq(&self.stage, &e.stage)
            && eq(&self.reason, &e.reason)
            && eq(&self.fault, &e.fault.code)
            && eq(&self.issue, &e.issue)
            && self.status.is_none_or(|s| match s {
                Status::Open => e.status.is_open(),
                s => e.status == s,
            })
            && self
                .from
                .as_deref()
                .is_none_or(|f| later_or_equal(&e.last_seen, f))
            && self
                .to
                .as_deref()
                .is_none_or(|t| !later_or_equal(&e.last_seen, t))
            && self.q.as_deref().is_none_or(|q| {
                let q = q.to_lowercase();
                [&e.order_number, &e.customer, &e.entity, &e.error, &e.id]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&q))
            })
    }
}

fn later_or_equal(a: &str, b: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a >= b,
        _ => a >= b,
    }
}
