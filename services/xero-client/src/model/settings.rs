//! The organisation's settings: the organisation, accounts, tax rates, tracking, currencies.

use super::contacts::PaymentTerms;
use ledgerline_platform::json::opt_decimal;
use rust_decimal::Decimal;
use serde::Deserialize;

/// The organisation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Organisation {
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// BaseCurrency.
    #[serde(deserialize_with = "super::nullable")]
    pub base_currency: String,
    /// Timezone (a Windows zone name, e.g. NEWZEALANDSTANDARDTIME).
    #[serde(deserialize_with = "super::nullable")]
    pub timezone: String,
    /// PeriodLockDate (`/Date(ms)/` or ISO).
    pub period_lock_date: Option<String>,
    /// EndOfYearLockDate.
    pub end_of_year_lock_date: Option<String>,
    /// Default PaymentTerms.
    pub payment_terms: Option<PaymentTerms>,
}

impl Organisation {
    /// The organisation's timezone. Xero reports Windows zone names; the ones our orgs use are
    /// mapped, an IANA name is taken as is, and anything else reads as Pacific/Auckland.
    pub fn tz(&self) -> chrono_tz::Tz {
        timezone(&self.timezone)
    }
}

/// A Xero timezone name (Windows, e.g. `NEWZEALANDSTANDARDTIME`, or IANA) as a zone.
pub fn timezone(name: &str) -> chrono_tz::Tz {
    match name.to_ascii_uppercase().as_str() {
        "NEWZEALANDSTANDARDTIME" => chrono_tz::Pacific::Auckland,
        "AUSEASTERNSTANDARDTIME" => chrono_tz::Australia::Sydney,
        "GMTSTANDARDTIME" => chrono_tz::Europe::London,
        "UTC" => chrono_tz::UTC,
        "EASTERNSTANDARDTIME" => chrono_tz::America::New_York,
        "PACIFICSTANDARDTIME" => chrono_tz::America::Los_Angeles,
        _ => name.parse().unwrap_or(chrono_tz::Pacific::Auckland),
    }
}

/// An account in the chart of accounts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Account {
    /// Code.
    #[serde(deserialize_with = "super::nullable")]
    pub code: String,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Type (REVENUE, BANK, ...).
    #[serde(rename = "Type")]
    #[serde(deserialize_with = "super::nullable")]
    pub kind: String,
    /// Class.
    #[serde(deserialize_with = "super::nullable")]
    pub class: String,
    /// ACTIVE or ARCHIVED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// EnablePaymentsToAccount.
    pub enable_payments_to_account: Option<bool>,
}

/// A tax rate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaxRate {
    /// TaxType.
    #[serde(deserialize_with = "super::nullable")]
    pub tax_type: String,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// EffectiveRate, a percentage.
    #[serde(with = "opt_decimal")]
    pub effective_rate: Option<Decimal>,
    /// ACTIVE, DELETED or ARCHIVED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// CanApplyToRevenue.
    pub can_apply_to_revenue: Option<bool>,
}

/// A tracking category.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TrackingCategory {
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// ACTIVE or ARCHIVED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// Options.
    #[serde(deserialize_with = "super::nullable")]
    pub options: Vec<TrackingOption>,
}

/// A tracking option.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TrackingOption {
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// ACTIVE or ARCHIVED.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
}

/// An enabled currency.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Currency {
    /// Code.
    #[serde(deserialize_with = "super::nullable")]
    pub code: String,
}
