//! In-memory state: organisations and their documents, plus the runtime settings that operators
//! change through /admin.

use crate::auth::AuthState;
use crate::config::Config;
use crate::model::*;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// One organisation (a Xero tenant) and everything in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: Uuid,
    /// Id of this tenant's connection (`GET /connections` `id`).
    pub connection_id: Uuid,
    /// False once the connection was deleted: the tenant then answers 403.
    pub connected: bool,
    pub created: DateTime<Utc>,
    /// IANA timezone used for "today".
    pub timezone: String,
    pub org: Organisation,
    pub accounts: Vec<Account>,
    pub tax_rates: Vec<TaxRate>,
    pub currencies: Vec<Currency>,
    pub tracking_categories: Vec<TrackingCategory>,
    pub contacts: Vec<Contact>,
    pub invoices: Vec<Invoice>,
    pub credit_notes: Vec<CreditNote>,
    pub payments: Vec<Payment>,
    #[serde(default)]
    pub batch_payments: Vec<BatchPayment>,
    /// Foreign units per base unit, used when a document omits `CurrencyRate`.
    pub daily_rates: BTreeMap<String, Decimal>,
    pub next_invoice_number: u32,
    pub next_credit_note_number: u32,
}

impl Tenant {
    /// Today's date in the organisation's timezone.
    pub fn today(&self) -> NaiveDate {
        let tz: chrono_tz::Tz = self
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Pacific::Auckland);
        Utc::now().with_timezone(&tz).date_naive()
    }
}

/// Everything a snapshot keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Store {
    /// Tenants in creation order; the first is the custom-connection tenant.
    pub tenants: Vec<Tenant>,
    /// Issued tokens and codes.
    pub auth: AuthState,
}

impl Store {
    /// The tenant with this id.
    pub fn tenant_mut(&mut self, id: Uuid) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.tenant_id == id)
    }
}

/// Settings operators change at run time (flags give the initial values).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub time_scale: f64,
    pub minute_limit: u32,
    pub day_limit: u32,
    pub concurrent_limit: u32,
    pub app_minute_limit: u32,
    pub access_token_secs: u64,
    pub refresh_grace_secs: u64,
    pub idempotency_secs: u64,
    pub atomic_batches: bool,
    pub bankers_rounding: bool,
    pub error_rate: f64,
    pub reset_rate: f64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Seconds of full outage left, counted from when it was set.
    #[serde(skip)]
    pub outage_until: Option<std::time::Instant>,
    /// The next this-many API calls get a 429 with `force_429_problem`.
    pub force_429: u32,
    pub force_429_problem: String,
    /// The next this-many successful PUT/POST calls whose endpoint contains
    /// `drop_after_apply_endpoint` (case-insensitive; empty: any) are applied, then their
    /// connection is cut before the body: the caller cannot know the write happened.
    #[serde(default)]
    pub drop_after_apply: u32,
    #[serde(default)]
    pub drop_after_apply_endpoint: String,
    /// The next this-many PUT/POST calls whose endpoint contains `refuse_endpoint`
    /// (case-insensitive; empty: any) are refused with a 400 ValidationException, as Xero
    /// refuses a write it will not take (a payment to an account that takes none).
    #[serde(default)]
    pub refuse_next: u32,
    #[serde(default)]
    pub refuse_endpoint: String,
    /// `granular` or `broad` (see `--app-kind`).
    #[serde(default)]
    pub app_kind: String,
}

impl Settings {
    /// Initial settings from flags.
    pub fn from_config(c: &Config) -> Self {
        Self {
            time_scale: if c.time_scale > 0.0 {
                c.time_scale
            } else {
                1.0
            },
            minute_limit: c.minute_limit,
            day_limit: c.day_limit,
            concurrent_limit: c.concurrent_limit,
            app_minute_limit: c.app_minute_limit,
            access_token_secs: c.access_token_secs,
            refresh_grace_secs: c.refresh_grace_secs,
            idempotency_secs: c.idempotency_secs,
            atomic_batches: c.atomic_batches,
            bankers_rounding: c.bankers_rounding,
            error_rate: c.error_rate,
            reset_rate: c.reset_rate,
            latency_ms: c.latency_ms,
            latency_jitter_ms: c.latency_jitter_ms,
            outage_until: None,
            force_429: 0,
            force_429_problem: "minute".into(),
            drop_after_apply: 0,
            drop_after_apply_endpoint: String::new(),
            refuse_next: 0,
            refuse_endpoint: String::new(),
            app_kind: c.app_kind.clone(),
        }
    }

    /// A nominal duration shrunk by the time scale.
    pub fn scaled(&self, nominal: Duration) -> Duration {
        nominal.div_f64(self.time_scale.max(1e-6))
    }

    /// Nominal seconds shrunk by the time scale.
    pub fn scaled_secs(&self, secs: u64) -> Duration {
        self.scaled(Duration::from_secs(secs))
    }
}
