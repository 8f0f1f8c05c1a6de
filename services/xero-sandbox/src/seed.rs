//! The demo organisation, and seed files that override parts of it.

use crate::model::*;
use crate::state::Tenant;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;

/// A seed file: one entry per tenant.
#[derive(Debug, Deserialize)]
pub struct SeedFile {
    /// Tenants to create, in order (the first is the custom-connection tenant).
    pub tenants: Vec<TenantSeed>,
}

/// One tenant of a seed file; absent parts come from the demo organisation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantSeed {
    /// Organisation name.
    pub name: Option<String>,
    /// Fixed tenant id (random otherwise).
    pub tenant_id: Option<Uuid>,
    /// Base currency (NZD otherwise).
    pub base_currency: Option<String>,
    /// IANA timezone for "today" (Pacific/Auckland otherwise).
    pub timezone: Option<String>,
    /// Period lock date; documents dated on or before it are refused.
    pub period_lock_date: Option<NaiveDate>,
    /// The organisation's default payment terms, in Xero's JSON shape.
    pub payment_terms: Option<PaymentTerms>,
    /// Chart of accounts, in Xero's JSON shape.
    pub accounts: Option<Vec<Account>>,
    /// Tax rates, in Xero's JSON shape.
    pub tax_rates: Option<Vec<TaxRate>>,
    /// Enabled currency codes.
    pub currencies: Option<Vec<String>>,
    /// Tracking categories with options.
    pub tracking_categories: Option<Vec<TrackingCategory>>,
    /// Contacts to start with.
    pub contacts: Option<Vec<Contact>>,
    /// Daily rates (foreign units per base unit) used when a document omits CurrencyRate.
    pub daily_rates: Option<BTreeMap<String, Decimal>>,
}

/// Reads a seed file.
pub fn load(path: &Path) -> anyhow::Result<SeedFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading seed {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parsing seed {}: {e}", path.display()))
}

/// Builds `n` demo tenants.
pub fn demo_tenants(n: usize) -> Vec<Tenant> {
    (0..n.max(1))
        .map(|i| {
            let name = if i == 0 {
                "Demo Company (NZ)".to_string()
            } else {
                format!("Demo Company (NZ) {}", i + 1)
            };
            tenant(TenantSeed {
                name: Some(name),
                ..Default::default()
            })
        })
        .collect()
}

/// Builds one tenant from a seed entry, filling gaps from the demo organisation.
pub fn tenant(s: TenantSeed) -> Tenant {
    let now = Utc::now();
    let base = s.base_currency.unwrap_or_else(|| "NZD".into());
    let name = s.name.unwrap_or_else(|| "Demo Company (NZ)".into());
    let tenant_id = s.tenant_id.unwrap_or_else(Uuid::new_v4);
    let org = Organisation {
        organisation_id: Uuid::new_v4(),
        name: name.clone(),
        legal_name: name,
        pays_tax: true,
        version: "NZ".into(),
        organisation_type: "COMPANY".into(),
        base_currency: base.clone(),
        country_code: "NZ".into(),
        is_demo_company: true,
        organisation_status: "ACTIVE".into(),
        financial_year_end_day: 31,
        financial_year_end_month: 3,
        sales_tax_basis: "PAYMENTS".into(),
        sales_tax_period: "TWOMONTHS".into(),
        default_sales_tax: "Tax Exclusive".into(),
        default_purchases_tax: "Tax Exclusive".into(),
        period_lock_date: s.period_lock_date,
        end_of_year_lock_date: None,
        payment_terms: s.payment_terms.clone(),
        created_date_utc: now,
        timezone: "NEWZEALANDSTANDARDTIME".into(),
        organisation_entity_type: "COMPANY".into(),
        short_code: format!("!{}", &tenant_id.simple().to_string()[..5]),
        class: "DEMO".into(),
        edition: "BUSINESS".into(),
    };
    let currencies = s
        .currencies
        .unwrap_or_else(|| {
            ["NZD", "AUD", "USD", "GBP", "EUR"]
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
        .into_iter()
        .map(|code| Currency {
            description: currency_name(&code).into(),
            code,
        })
        .collect();
    let mut accounts = s.accounts.unwrap_or_else(demo_accounts);
    for a in &mut accounts {
        a.updated_date_utc = now;
    }
    Tenant {
        tenant_id,
        connection_id: Uuid::new_v4(),
        connected: true,
        created: now,
        timezone: s.timezone.unwrap_or_else(|| "Pacific/Auckland".into()),
        org,
        accounts,
        tax_rates: s.tax_rates.unwrap_or_else(demo_tax_rates),
        currencies,
        tracking_categories: s.tracking_categories.unwrap_or_else(demo_tracking),
        contacts: s.contacts.unwrap_or_default(),
        invoices: Vec::new(),
        credit_notes: Vec::new(),
        payments: Vec::new(),
        batch_payments: Vec::new(),
        daily_rates: s.daily_rates.unwrap_or_else(|| {
            BTreeMap::from([
                ("AUD".to_string(), dec!(0.9150)),
                ("USD".to_string(), dec!(0.5900)),
                ("GBP".to_string(), dec!(0.4650)),
                ("EUR".to_string(), dec!(0.5450)),
                ("JPY".to_string(), dec!(88.50)),
            ])
        }),
        next_invoice_number: 1,
        next_credit_note_number: 1,
    }
}

fn currency_name(code: &str) -> &'static str {
    match code {
        "NZD" => "New Zealand Dollar",
        "AUD" => "Australian Dollar",
        "USD" => "United States Dollar",
        "GBP" => "British Pound",
        "EUR" => "Euro",
        "JPY" => "Japanese Yen",
        _ => "",
    }
}

fn account(code: &str, name: &str, kind: &str, class: &str, tax: &str) -> Account {
    Account {
        account_id: Uuid::new_v4(),
        code: code.into(),
        name: name.into(),
        kind: kind.into(),
        status: "ACTIVE".into(),
        description: None,
        bank_account_number: None,
        bank_account_type: None,
        currency_code: None,
        tax_type: tax.into(),
        enable_payments_to_account: false,
        show_in_expense_claims: false,
        class: class.into(),
        system_account: None,
        has_attachments: false,
        updated_date_utc: Utc::now(),
    }
}

fn demo_accounts() -> Vec<Account> {
    let mut bank = account("090", "Business Bank Account", "BANK", "ASSET", "NONE");
    bank.bank_account_number = Some("0102030405060708".into());
    bank.bank_account_type = Some("BANK".into());
    bank.currency_code = Some("NZD".into());
    let mut clearing = account("615", "Payments Clearing", "CURRLIAB", "LIABILITY", "NONE");
    clearing.enable_payments_to_account = true;
    clearing.description = Some("Card and gateway receipts awaiting payout.".into());
    let mut debtors = account("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE");
    debtors.system_account = Some("DEBTORS".into());
    let mut creditors = account("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE");
    creditors.system_account = Some("CREDITORS".into());
    let mut rounding = account("860", "Rounding", "CURRLIAB", "LIABILITY", "NONE");
    rounding.system_account = Some("ROUNDING".into());
    let mut gst = account("820", "GST", "CURRLIAB", "LIABILITY", "NONE");
    gst.system_account = Some("GST".into());
    let mut fx = account(
        "875",
        "Realised Currency Gains",
        "EXPENSE",
        "EXPENSE",
        "NONE",
    );
    fx.system_account = Some("REALISEDCURRENCYGAIN".into());
    let mut archived = account(
        "205",
        "Old Sales (archived)",
        "REVENUE",
        "REVENUE",
        "OUTPUT2",
    );
    archived.status = "ARCHIVED".into();
    vec![
        bank,
        clearing,
        account("200", "Sales", "REVENUE", "REVENUE", "OUTPUT2"),
        account(
            "210",
            "Freight and Shipping Income",
            "REVENUE",
            "REVENUE",
            "OUTPUT2",
        ),
        account("220", "Export Sales", "REVENUE", "REVENUE", "ZERORATED"),
        account("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT2"),
        archived,
        account("270", "Interest Income", "REVENUE", "REVENUE", "NONE"),
        account("300", "Purchases", "DIRECTCOSTS", "EXPENSE", "INPUT2"),
        account(
            "310",
            "Cost of Goods Sold",
            "DIRECTCOSTS",
            "EXPENSE",
            "INPUT2",
        ),
        account("404", "Bank Fees", "EXPENSE", "EXPENSE", "NONE"),
        account("425", "Freight and Courier", "EXPENSE", "EXPENSE", "INPUT2"),
        account("429", "General Expenses", "EXPENSE", "EXPENSE", "INPUT2"),
        account("630", "Inventory", "INVENTORY", "ASSET", "INPUT2"),
        debtors,
        creditors,
        gst,
        rounding,
        fx,
        account(
            "970",
            "Owner A Funds Introduced",
            "EQUITY",
            "EQUITY",
            "NONE",
        ),
    ]
}

fn rate(
    name: &str,
    tax_type: &str,
    pct: Decimal,
    report: &str,
    revenue: bool,
    expenses: bool,
) -> TaxRate {
    TaxRate {
        name: name.into(),
        tax_type: tax_type.into(),
        tax_components: vec![TaxComponent {
            name: "GST".into(),
            rate: pct,
            is_compound: false,
            is_non_recoverable: false,
        }],
        status: "ACTIVE".into(),
        report_tax_type: report.into(),
        can_apply_to_assets: expenses,
        can_apply_to_equity: expenses,
        can_apply_to_expenses: expenses,
        can_apply_to_liabilities: expenses,
        can_apply_to_revenue: revenue,
        display_tax_rate: pct,
        effective_rate: pct,
    }
}

fn demo_tax_rates() -> Vec<TaxRate> {
    vec![
        rate("GST on Income", "OUTPUT2", dec!(15), "OUTPUT", true, false),
        rate("GST on Expenses", "INPUT2", dec!(15), "INPUT", false, true),
        rate("Zero Rated", "ZERORATED", dec!(0), "OUTPUT", true, true),
        rate(
            "Exempt",
            "EXEMPTOUTPUT",
            dec!(0),
            "EXEMPTOUTPUT",
            true,
            false,
        ),
        rate("No GST", "NONE", dec!(0), "NONE", true, true),
        rate("AU GST 10%", "TAX001", dec!(10), "OUTPUT", true, false),
    ]
}

fn category(name: &str, options: &[&str]) -> TrackingCategory {
    TrackingCategory {
        tracking_category_id: Uuid::new_v4(),
        name: name.into(),
        status: "ACTIVE".into(),
        options: options
            .iter()
            .map(|o| TrackingOption {
                tracking_option_id: Uuid::new_v4(),
                name: (*o).into(),
                status: "ACTIVE".into(),
            })
            .collect(),
    }
}

fn demo_tracking() -> Vec<TrackingCategory> {
    vec![
        category(
            "Region",
            &[
                "North Island",
                "South Island",
                "Australia",
                "Export",
                "Other",
            ],
        ),
        category(
            "Sales Channel",
            &["Web Store", "B2B Portal", "Marketplace", "Phone"],
        ),
    ]
}
