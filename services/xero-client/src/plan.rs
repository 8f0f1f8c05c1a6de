//! Xero's terms as of March 2026 (FACTS.md §8, §12): the pricing tier an app is on (its day
//! limit and monthly egress allowance) and the OAuth scopes it may ask for.

use std::fmt;

/// Xero's developer pricing tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Free: 1,000 calls a day per organisation, egress unlimited.
    Starter,
    /// 5,000 calls a day, 10 GB of egress a month.
    Core,
    /// 5,000 calls a day, 50 GB a month (certified apps).
    Plus,
    /// 5,000 calls a day, 250 GB a month.
    Advanced,
}

const GB: u64 = 1_000_000_000;

impl Tier {
    /// Calls per day per organisation.
    pub fn day_calls(self) -> u32 {
        match self {
            Tier::Starter => 1_000,
            _ => 5_000,
        }
    }

    /// Response bytes a month included (`None`: unlimited). Past it, use is billed per GB.
    pub fn egress_allowance(self) -> Option<u64> {
        match self {
            Tier::Starter => None,
            Tier::Core => Some(10 * GB),
            Tier::Plus => Some(50 * GB),
            Tier::Advanced => Some(250 * GB),
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starter" => Ok(Tier::Starter),
            "core" => Ok(Tier::Core),
            "plus" => Ok(Tier::Plus),
            "advanced" => Ok(Tier::Advanced),
            other => Err(format!(
                "{other:?} is not a tier: use starter, core, plus or advanced"
            )),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Starter => "starter",
            Tier::Core => "core",
            Tier::Plus => "plus",
            Tier::Advanced => "advanced",
        })
    }
}

/// Parses a byte size: `10GB`, `500MB`, `64KB`, `1.5GB` or plain bytes (decimal units, as Xero
/// bills them).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => GB,
        "TB" => 1_000 * GB,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KB, MB, GB, TB)"
            ));
        }
    };
    let n: rust_decimal::Decimal = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 10GB"))?;
    let bytes = n * rust_decimal::Decimal::from(mult);
    if bytes.is_sign_negative() {
        return Err(format!("{s:?} is negative"));
    }
    use rust_decimal::prelude::ToPrimitive;
    bytes
        .trunc()
        .to_u64()
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The broad scope that granular apps may not ask for (its `.read` too): apps created from
/// 2 March 2026, and Custom Connections from 29 April 2026, get `accounting.invoices`,
/// `accounting.payments`, `accounting.banktransactions` and `accounting.manualjournals` instead.
pub const BROAD_ONLY: &[&str] = &["accounting.transactions", "accounting.transactions.read"];

/// What the writer asks for on a granular app: it writes invoices, credit notes, payments and
/// contacts, and only reads settings.
pub const WRITER_SCOPES: &str = "offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings.read";

/// What the writer asks for on an app made before March 2026 that still uses broad scopes.
pub const WRITER_LEGACY_SCOPES: &str =
    "offline_access accounting.transactions accounting.contacts accounting.settings.read";

/// What the reconciler asks for on a granular app: it only reads (documents, payments,
/// contacts and the organisation's settings, for its timezone).
pub const RECONCILER_SCOPES: &str = "offline_access accounting.invoices.read accounting.payments.read accounting.contacts.read accounting.settings.read";

/// What the reconciler asks for on an app made before March 2026 that uses broad scopes.
pub const RECONCILER_LEGACY_SCOPES: &str =
    "offline_access accounting.transactions.read accounting.contacts.read accounting.settings.read";

/// The broad-only scopes in `scope` (space-separated).
pub fn broad_in(scope: &str) -> Vec<&str> {
    scope
        .split_whitespace()
        .filter(|s| BROAD_ONLY.contains(s))
        .collect()
}

/// One sentence on Xero's `invalid_scope`, for people.
pub const INVALID_SCOPE_HELP: &str = "Xero answered invalid_scope: apps created from 2 March 2026 (and Custom Connections from 29 April 2026) may ask only for granular scopes, so drop accounting.transactions and ask for accounting.invoices and accounting.payments instead (the default of XERO_SCOPES).";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_set_the_day_and_the_egress() {
        assert_eq!("Starter".parse::<Tier>().unwrap().day_calls(), 1_000);
        assert_eq!(Tier::Core.day_calls(), 5_000);
        assert_eq!(Tier::Core.egress_allowance(), Some(10_000_000_000));
        assert_eq!(Tier::Starter.egress_allowance(), None);
        assert!("gold".parse::<Tier>().is_err());
    }

    #[test]
    fn sizes_parse_in_decimal_units() {
        assert_eq!(parse_bytes("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_bytes("1.5 mb").unwrap(), 1_500_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 XB").is_err());
    }

    #[test]
    fn the_default_scopes_are_granular() {
        assert!(broad_in(WRITER_SCOPES).is_empty());
        assert_eq!(broad_in(WRITER_LEGACY_SCOPES), ["accounting.transactions"]);
    }
}
