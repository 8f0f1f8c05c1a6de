//! Which entries a list, an export or a bulk replay covers.

use crate::auth::Caller;
use crate::entry::{Status, Summary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 as the API takes it: date, `T`, time, optional fraction, `Z` or an offset.
const RFC3339: &str = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";

/// The schema of an instant (OpenAPI 3.1 only annotates `format`, so the pattern is what a
/// client's validator checks).
pub fn instant_schema() -> utoipa::openapi::Object {
    time_schema(utoipa::openapi::schema::Type::String.into())
}

/// [`instant_schema`], or null.
pub fn optional_instant_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    time_schema(SchemaType::from_iter([Type::String, Type::Null]))
}

fn time_schema(ty: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(ty)
        .pattern(Some(format!("^{RFC3339}$")))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .examples([serde_json::json!("2026-12-07T09:30:00Z")])
        .build()
}

/// Filters; every one given must match. Times are RFC 3339 and bound `last_seen`. An empty
/// text value is no filter, as a form's empty field means.
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
    #[schema(schema_with = optional_instant_schema)]
    pub from: Option<String>,
    /// Last seen before (RFC 3339).
    #[schema(schema_with = optional_instant_schema)]
    pub to: Option<String>,
    /// Text in the order number, customer, entity, error or id.
    pub q: Option<String>,
}

impl Filter {
    /// Empty text values dropped (no filter), and the times checked, so a typo (or an empty
    /// time) is a 400 rather than an empty list.
    pub fn normalized(mut self) -> Result<Self, String> {
        for f in [
            &mut self.store,
            &mut self.stage,
            &mut self.reason,
            &mut self.fault,
            &mut self.issue,
            &mut self.q,
        ] {
            if f.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *f = None;
            }
        }
        for (name, t) in [("from", &self.from), ("to", &self.to)] {
            if let Some(t) = t {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| format!("{name}: {t:?} is not RFC 3339 ({e})"))?;
            }
        }
        Ok(self)
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
