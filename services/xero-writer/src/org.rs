//! A cached copy of one organisation's settings (accounts, tax rates, tracking categories,
//! currencies, timezone), used to check every document before a call is spent and to rank
//! suggestions for the review queue.

use ledgerline_contract::v1::{LineKind, Suggestion};
use ledgerline_xero_client::{Client, Need, XeroError};
use reqwest::Method;
use rust_decimal::Decimal;
use std::time::Instant;

/// One account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Type (BANK, REVENUE, ...).
    pub kind: String,
    /// Class (REVENUE, ASSET, ...).
    pub class: String,
    /// ACTIVE or ARCHIVED.
    pub active: bool,
    /// Can receive payments.
    pub payments: bool,
}

/// One tax rate.
#[derive(Debug, Clone)]
pub struct TaxRate {
    /// TaxType code.
    pub tax_type: String,
    /// Name.
    pub name: String,
    /// Effective rate in percent.
    pub rate: Decimal,
    /// Active and usable on sales.
    pub revenue: bool,
}

/// One tracking category with its active options.
#[derive(Debug, Clone)]
pub struct Tracking {
    /// Category name.
    pub name: String,
    /// Active option names.
    pub options: Vec<String>,
}

/// The organisation's settings as last read.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Tax rates.
    pub tax_rates: Vec<TaxRate>,
    /// Active tracking categories.
    pub tracking: Vec<Tracking>,
    /// Enabled currency codes.
    pub currencies: Vec<String>,
    /// Base currency.
    pub base_currency: String,
    /// Timezone for document dates.
    pub timezone: chrono_tz::Tz,
    /// The organisation's default sales payment terms.
    pub sales_terms: Option<crate::terms::Terms>,
    /// Documents dated on or before this day cannot be written (the later of Xero's
    /// PeriodLockDate and EndOfYearLockDate).
    pub lock_date: Option<chrono::NaiveDate>,
    /// When read.
    pub fetched: Instant,
}

/// A Xero date: MS-JSON `/Date(ms+0000)/` or `YYYY-MM-DD[Thh:mm:ss]`.
pub fn xero_day(text: &str) -> Option<chrono::NaiveDate> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
    {
        let digits: String = inner
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let ms: i64 = digits.parse().ok()?;
        return chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive());
    }
    chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

impl OrgSettings {
    /// Reads the settings (five GETs).
    pub async fn fetch(client: &Client) -> Result<Self, XeroError> {
        let org = client.call(Method::GET, "/Organisation", &[], None).await?;
        let accounts = client.call(Method::GET, "/Accounts", &[], None).await?;
        let rates = client.call(Method::GET, "/TaxRates", &[], None).await?;
        let tracking = client
            .call(Method::GET, "/TrackingCategories", &[], None)
            .await?;
        let currencies = client.call(Method::GET, "/Currencies", &[], None).await?;
        let o = org.organisations.into_iter().next().unwrap_or_default();
        // A rate that cannot be read fails the refresh (the old copy stays), never reads as 0.
        let tax_rates = rates
            .tax_rates
            .into_iter()
            .map(|r| {
                Ok(TaxRate {
                    rate: r.effective_rate.need("EffectiveRate")?,
                    revenue: r.status == "ACTIVE" && r.can_apply_to_revenue != Some(false),
                    tax_type: r.tax_type,
                    name: r.name,
                })
            })
            .collect::<Result<Vec<_>, ledgerline_xero_client::AmountError>>()?;
        Ok(Self {
            accounts: accounts
                .accounts
                .into_iter()
                .map(|a| Account {
                    active: a.status == "ACTIVE",
                    payments: a.kind == "BANK" || a.enable_payments_to_account == Some(true),
                    code: a.code,
                    name: a.name,
                    kind: a.kind,
                    class: a.class,
                })
                .collect(),
            tax_rates,
            tracking: tracking
                .tracking_categories
                .into_iter()
                .filter(|c| c.status == "ACTIVE")
                .map(|c| Tracking {
                    name: c.name,
                    options: c
                        .options
                        .into_iter()
                        .filter(|o| o.status != "ARCHIVED")
                        .map(|o| o.name)
                        .collect(),
                })
                .collect(),
            currencies: currencies.currencies.into_iter().map(|c| c.code).collect(),
            timezone: o.tz(),
            sales_terms: o
                .payment_terms
                .as_ref()
                .and_then(crate::terms::Terms::sales_of),
            lock_date: [&o.period_lock_date, &o.end_of_year_lock_date]
                .into_iter()
                .filter_map(|d| d.as_deref().and_then(xero_day))
                .max(),
            base_currency: o.base_currency,
            fetched: Instant::now(),
        })
    }

    /// An active account a sales line may use.
    pub fn sales_account(&self, code: &str) -> bool {
        self.accounts
            .iter()
            .any(|a| a.active && a.kind != "BANK" && a.code.eq_ignore_ascii_case(code))
    }

    /// An active account that can receive payments.
    pub fn payment_account(&self, code: &str) -> bool {
        self.accounts
            .iter()
            .any(|a| a.active && a.payments && a.code.eq_ignore_ascii_case(code))
    }

    /// The sales tax rate of a TaxType (percent), if usable on revenue.
    pub fn revenue_rate(&self, tax_type: &str) -> Option<Decimal> {
        self.tax_rates
            .iter()
            .find(|r| r.revenue && r.tax_type.eq_ignore_ascii_case(tax_type))
            .map(|r| r.rate)
    }

    /// The option name as the org spells it, if the category and option are active.
    pub fn tracking_option(&self, category: &str, option: &str) -> Option<(String, String)> {
        let c = self
            .tracking
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(category))?;
        let o = c.options.iter().find(|o| o.eq_ignore_ascii_case(option))?;
        Some((c.name.clone(), o.clone()))
    }

    /// Ranked AccountCode suggestions for a line of `kind`: revenue accounts whose name fits.
    pub fn suggest_accounts(&self, kind: LineKind, current: &str) -> Vec<Suggestion> {
        let words: &[&str] = match kind {
            LineKind::Shipping | LineKind::Handling => &["freight", "shipping", "delivery"],
            LineKind::Fee => &["other revenue", "fee"],
            LineKind::Rounding => &["rounding"],
            _ => &["sales"],
        };
        let mut out: Vec<Suggestion> = self
            .accounts
            .iter()
            .filter(|a| a.active && a.kind != "BANK")
            .filter(|a| a.class == "REVENUE" || kind == LineKind::Rounding)
            .map(|a| {
                let name = a.name.to_ascii_lowercase();
                let fits = words.iter().position(|w| name.contains(w));
                let mut score: f64 = match fits {
                    Some(0) => 0.9,
                    Some(_) => 0.8,
                    None => 0.3,
                };
                if name == words[0] {
                    score += 0.05;
                }
                let prefix = a
                    .code
                    .chars()
                    .zip(current.chars())
                    .take_while(|(x, y)| x == y)
                    .count();
                score += 0.01 * prefix as f64;
                Suggestion {
                    field: "AccountCode".into(),
                    current_value: current.to_owned(),
                    suggested_value: a.code.clone(),
                    score: score.min(1.0),
                    reason: format!(
                        "active {} account \"{}\"{}",
                        a.class.to_ascii_lowercase(),
                        a.name,
                        if fits.is_some() {
                            format!(" fits {kind:?} lines").to_ascii_lowercase()
                        } else {
                            String::new()
                        }
                    ),
                    rule: String::new(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(5);
        out
    }

    /// Ranked TaxType suggestions for a line whose effective rate is `rate` (a fraction).
    pub fn suggest_tax_types(&self, rate: Decimal, current: &str) -> Vec<Suggestion> {
        let pct = rate * Decimal::ONE_HUNDRED;
        let mut out: Vec<Suggestion> = self
            .tax_rates
            .iter()
            .filter(|r| r.revenue)
            .map(|r| {
                let diff = (r.rate - pct).abs();
                let score = if diff.is_zero() {
                    0.95
                } else {
                    (0.5 - diff.try_into().unwrap_or(50.0f64) / 100.0).max(0.05)
                };
                Suggestion {
                    field: "TaxType".into(),
                    current_value: current.to_owned(),
                    suggested_value: r.tax_type.clone(),
                    score,
                    reason: format!(
                        "\"{}\" applies to revenue at {}% (line rate {}%)",
                        r.name,
                        r.rate.normalize(),
                        pct.normalize()
                    ),
                    rule: String::new(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(5);
        out
    }

    /// Ranked suggestions for a tracking value the org lacks, best first: the closest active
    /// options of the category, or, when the category itself is missing, the org's categories.
    pub fn suggest_tracking(&self, category: &str, value: &str) -> Vec<Suggestion> {
        let mut out: Vec<Suggestion> = match self
            .tracking
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(category))
        {
            Some(c) => c
                .options
                .iter()
                .map(|o| {
                    let (score, why) = closeness(value, o);
                    Suggestion {
                        field: format!("Tracking.{}", c.name),
                        current_value: value.to_owned(),
                        suggested_value: o.clone(),
                        score,
                        reason: format!("active option of \"{}\"; {why}", c.name),
                        // The store keeps its value; the writer sends the org's option.
                        rule: format!("[tracking_options.{category:?}]\n{value:?} = {o:?}\n"),
                    }
                })
                .collect(),
            None => self
                .tracking
                .iter()
                .map(|c| {
                    let (score, why) = closeness(category, &c.name);
                    Suggestion {
                        field: "Tracking".into(),
                        current_value: category.to_owned(),
                        suggested_value: c.name.clone(),
                        score,
                        reason: format!(
                            "no active category \"{category}\"; \"{}\" is one ({why}), options: {}",
                            c.name,
                            c.options.join(", ")
                        ),
                        rule: String::new(),
                    }
                })
                .collect(),
        };
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.suggested_value.cmp(&b.suggested_value))
        });
        out.truncate(3);
        out
    }
}

/// How close `name` is to `wanted` (0..1) and why: a shared prefix or containment ranks above
/// mere spelling likeness (edit distance and Jaro-Winkler, case-insensitive).
fn closeness(wanted: &str, name: &str) -> (f64, String) {
    let w = wanted.trim().to_lowercase();
    let n = name.trim().to_lowercase();
    if w.is_empty() || n.is_empty() {
        return (0.05, "no likeness".into());
    }
    if n.starts_with(&w) || w.starts_with(&n) {
        return (0.9, "one starts with the other".into());
    }
    if n.contains(&w) || w.contains(&n) {
        return (0.8, "one contains the other".into());
    }
    let edits = strsim::damerau_levenshtein(&w, &n);
    let longest = w.chars().count().max(n.chars().count());
    let spelled = 1.0 - edits as f64 / longest as f64;
    let jw = strsim::jaro_winkler(&w, &n);
    let score = (0.05 + 0.65 * (spelled + jw) / 2.0).min(0.7);
    (
        (score * 1000.0).round() / 1000.0,
        format!("{edits} edits apart"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgSettings {
        OrgSettings {
            accounts: vec![],
            tax_rates: vec![],
            tracking: vec![
                Tracking {
                    name: "Region".into(),
                    options: vec![
                        "North Island".into(),
                        "South Island".into(),
                        "Export".into(),
                    ],
                },
                Tracking {
                    name: "Sales Channel".into(),
                    options: vec!["Web Store".into(), "B2B Portal".into()],
                },
            ],
            currencies: vec![],
            base_currency: "NZD".into(),
            timezone: chrono_tz::UTC,
            sales_terms: None,
            lock_date: None,
            fetched: Instant::now(),
        }
    }

    #[test]
    fn tracking_suggestions_rank_prefix_containment_then_spelling() {
        let o = org();
        let s = o.suggest_tracking("region", "Nowhere");
        assert_eq!(s[0].suggested_value, "North Island", "{s:?}");
        assert_eq!(s[0].field, "Tracking.Region");
        assert!(s.windows(2).all(|w| w[0].score >= w[1].score));
        let s = o.suggest_tracking("Region", "south");
        assert_eq!(s[0].suggested_value, "South Island");
        assert!((s[0].score - 0.9).abs() < 1e-9);
        let s = o.suggest_tracking("Region", "Exprot");
        assert_eq!(s[0].suggested_value, "Export", "a transposition: {s:?}");
        assert!(s[0].reason.contains("1 edits apart"), "{}", s[0].reason);
        // A missing category suggests the org's categories.
        let s = o.suggest_tracking("Sales Chanel", "Web");
        assert_eq!(s[0].field, "Tracking");
        assert_eq!(s[0].suggested_value, "Sales Channel");
        assert!(s[0].reason.contains("Web Store"), "{}", s[0].reason);
    }
}
