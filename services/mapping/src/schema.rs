//! The mapping schema: one serde model, read by the normalizer (status map, tracking dimensions,
//! discount and tax rules) and by the writer (accounts, tax types, field targets, numbering).

use ledgerline_contract::v1::{LineKind, OrderStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The effective mapping: defaults, then the operator's file, then the KV overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Clarity `StatusKey` → canonical status.
    pub status: BTreeMap<String, Status>,
    /// How lines are built.
    pub lines: LineRules,
    /// Tax defaults that are not per code.
    pub tax: TaxRules,
    /// The store's tax codes (`ProductTaxCode`): rate, Xero TaxType, optional account.
    pub tax_codes: BTreeMap<String, TaxCode>,
    /// Xero AccountCode per line kind.
    pub accounts: Accounts,
    /// Invoice and credit-note numbering.
    pub invoice: InvoiceRules,
    /// Payment method → account.
    pub payments: PaymentRules,
    /// Tracking dimensions (Xero allows two active tracking categories).
    #[serde(default)]
    pub tracking: Vec<TrackingDimension>,
    /// Per tracking category, a store value → the organisation's option, applied by the writer
    /// before it checks the organisation's options: `[tracking_options."Sales Channel"]` with
    /// `"Pop-up Shop" = "Marketplace"`. What the review queue's tracking fixes write. Left out
    /// of the serialized mapping when empty, so mappings without it keep their revision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracking_options: BTreeMap<String, BTreeMap<String, String>>,
    /// Custom fields (`SerializableAttributes`) → Xero field targets.
    #[serde(default)]
    pub fields: Vec<FieldRule>,
    /// Currency rules.
    pub currency: CurrencyRules,
    /// Contact rules.
    pub contacts: ContactRules,
}

/// Canonical order status names as written in the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, not yet paid in full.
    Confirmed,
    /// Some money received.
    PartiallyPaid,
    /// Paid in full.
    Paid,
    /// Shipped or ready for pickup.
    Fulfilled,
    /// Done.
    Completed,
    /// Voided.
    Cancelled,
}

impl From<Status> for OrderStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Confirmed => OrderStatus::Confirmed,
            Status::PartiallyPaid => OrderStatus::PartiallyPaid,
            Status::Paid => OrderStatus::Paid,
            Status::Fulfilled => OrderStatus::Fulfilled,
            Status::Completed => OrderStatus::Completed,
            Status::Cancelled => OrderStatus::Cancelled,
        }
    }
}

/// `[lines]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRules {
    /// What to do with a discount the store did not allocate to items.
    pub unallocated_discount: DiscountRule,
    /// Where the difference between the order's `Tax` and the sum of per-line tax goes.
    pub tax_difference: TaxDifferenceRule,
    /// Largest accepted difference between the order's `Tax` and the recomputed tax, plus half a
    /// cent per line (per-line rounding); beyond it the order is invalid.
    pub tax_tolerance: Decimal,
}

/// A discount not allocated to items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountRule {
    /// One discount line (kind DISCOUNT) for the unallocated amount.
    Line,
    /// Spread across product lines in proportion to their net amounts.
    Allocate,
}

/// Where a cent of tax rounding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxDifferenceRule {
    /// Onto the tax of the line with the largest tax (Xero accepts a tax override of a few cents).
    LargestLine,
    /// A ROUNDING line carrying the difference as an untaxed amount.
    RoundingLine,
}

/// `[tax]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxRules {
    /// The code for shipping, handling and fees when the order does not tell (no taxable items).
    pub default_code: String,
    /// Xero TaxType for lines that are not taxable at all.
    pub untaxed_tax_type: String,
}

/// `[tax_codes.<CODE>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxCode {
    /// The rate as a fraction, e.g. `0.15`.
    pub rate: Decimal,
    /// Xero TaxType, e.g. `OUTPUT2`.
    pub tax_type: String,
    /// AccountCode for product lines with this code (e.g. export sales), instead of
    /// `accounts.product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_account: Option<String>,
}

/// `[accounts]`: Xero AccountCode per line kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    /// Product lines.
    pub product: String,
    /// Shipping lines.
    pub shipping: String,
    /// Handling lines.
    pub handling: String,
    /// Fee lines.
    pub fee: String,
    /// Discount lines.
    pub discount: String,
    /// Rounding lines.
    pub rounding: String,
}

/// `[invoice]`: patterns with `{store}`, `{number}`, `{id}`, `{po}`, `{return}`; `{a|b}` takes
/// the first non-empty of `a` and `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRules {
    /// InvoiceNumber; must contain `{number}` or `{id}` so it is unique per order.
    pub number: String,
    /// Reference.
    pub reference: String,
    /// CreditNoteNumber for a return; must contain `{return}`.
    pub credit_note_number: String,
    /// Days from the invoice date to its due date when neither the order's `DueDate` nor the
    /// contact's payment terms say.
    #[serde(default = "default_due_days")]
    pub default_due_days: u32,
}

const fn default_due_days() -> u32 {
    20
}

/// `[payments]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRules {
    /// Account for a method not listed.
    pub default_account: String,
    /// `PaymentMethodKey` → AccountCode.
    #[serde(default)]
    pub methods: BTreeMap<String, String>,
}

/// `[[tracking]]`: one tracking dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingDimension {
    /// The Xero tracking category name, e.g. "Sales Channel".
    pub name: String,
    /// The order attribute whose value is used when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Rules on the shipping (else billing) address, tried in order when the attribute is absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TrackingRule>,
    /// Value when neither the attribute nor a rule gives one; none means "no tracking".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One address rule: matches when every condition given matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingRule {
    /// ISO 3166-1 alpha-2 country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Region codes (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// The value to use.
    pub value: String,
}

/// `[[fields]]`: a custom field → a Xero field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Attribute name (`SerializableAttributes` key) on the order or the account.
    pub attribute: String,
    /// Where it goes.
    pub target: FieldTarget,
}

/// Xero fields a custom field can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldTarget {
    /// Invoice `Reference` (instead of `invoice.reference`).
    #[serde(rename = "invoice.reference")]
    InvoiceReference,
    /// Contact `AccountNumber`.
    #[serde(rename = "contact.account_number")]
    ContactAccountNumber,
    /// A contact group the contact is added to.
    #[serde(rename = "contact.group")]
    ContactGroup,
    /// Contact sales payment terms, days after invoice date.
    #[serde(rename = "contact.payment_terms_days")]
    ContactPaymentTermsDays,
    /// Contact `TaxNumber`.
    #[serde(rename = "contact.tax_number")]
    ContactTaxNumber,
}

/// `[currency]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyRules {
    /// The Xero organisation's base currency.
    pub base: String,
    /// Currencies accepted on orders; empty means any ISO 4217 code.
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// `[contacts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRules {
    /// How guests (orders without an account) become Xero contacts.
    pub guests: GuestPolicy,
    /// The shared contact's name under `guests = "single"`.
    pub guest_contact_name: String,
}

/// Guest contact policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestPolicy {
    /// One contact per normalised email.
    PerEmail,
    /// One shared contact for every guest.
    Single,
}

/// What a pattern's placeholders stand for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatternValues<'a> {
    /// Store name.
    pub store: &'a str,
    /// Order number (`CustomKey`).
    pub number: &'a str,
    /// Order id.
    pub id: &'a str,
    /// Purchase order number.
    pub po: &'a str,
    /// Return key (`RMA-...`).
    pub ret: &'a str,
}

/// Placeholder names a pattern may use.
pub const PLACEHOLDERS: [&str; 5] = ["store", "number", "id", "po", "return"];

impl PatternValues<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "store" => self.store,
            "number" => self.number,
            "id" => self.id,
            "po" => self.po,
            "return" => self.ret,
            _ => return None,
        })
    }
}

/// Fills a pattern; unknown placeholders render empty (validation rejects them at load).
pub fn render(pattern: &str, values: &PatternValues<'_>) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 1..start + len];
        let value = inner
            .split('|')
            .filter_map(|n| values.get(n.trim()))
            .find(|v| !v.is_empty())
            .unwrap_or("");
        out.push_str(value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Placeholder names used by a pattern (for validation).
pub fn placeholders(pattern: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            names.push(rest[start + 1..].to_owned());
            break;
        };
        names.extend(
            rest[start + 1..start + len]
                .split('|')
                .map(|n| n.trim().to_owned()),
        );
        rest = &rest[start + len + 1..];
    }
    names
}

impl Mapping {
    /// Canonical status for a Clarity `StatusKey`.
    pub fn status_for(&self, source_status: &str) -> Option<OrderStatus> {
        self.status.get(source_status).map(|s| (*s).into())
    }

    /// The tax code entry for a store code.
    pub fn tax_code(&self, code: &str) -> Option<&TaxCode> {
        self.tax_codes.get(code)
    }

    /// Xero AccountCode for a line of `kind` with the store's tax code.
    pub fn account_for(&self, kind: LineKind, source_tax_code: &str) -> &str {
        let a = &self.accounts;
        match kind {
            LineKind::Product | LineKind::Unspecified => self
                .tax_codes
                .get(source_tax_code)
                .and_then(|t| t.sales_account.as_deref())
                .unwrap_or(&a.product),
            LineKind::Shipping => &a.shipping,
            LineKind::Handling => &a.handling,
            LineKind::Fee => &a.fee,
            LineKind::Discount => &a.discount,
            LineKind::Rounding => &a.rounding,
        }
    }

    /// Xero TaxType for a line: by its store tax code when taxable, else `tax.untaxed_tax_type`.
    /// `None` when a taxable line's code is not mapped (a MAPPING dead letter for the writer).
    pub fn tax_type_for(
        &self,
        kind: LineKind,
        source_tax_code: &str,
        taxable: bool,
    ) -> Option<&str> {
        if !taxable || kind == LineKind::Rounding {
            return Some(&self.tax.untaxed_tax_type);
        }
        self.tax_codes
            .get(source_tax_code)
            .map(|t| t.tax_type.as_str())
    }

    /// AccountCode that receives payments made with `method` (`PaymentMethodKey`).
    pub fn payment_account(&self, method: &str) -> &str {
        self.payments
            .methods
            .get(method)
            .unwrap_or(&self.payments.default_account)
    }

    /// InvoiceNumber for an order.
    pub fn invoice_number(&self, values: &PatternValues<'_>) -> String {
        render(&self.invoice.number, values)
    }

    /// Invoice Reference: a custom field targeted at it wins over the pattern.
    pub fn invoice_reference(
        &self,
        values: &PatternValues<'_>,
        attributes: &BTreeMap<String, String>,
    ) -> String {
        self.field_value(FieldTarget::InvoiceReference, attributes)
            .map(str::to_owned)
            .unwrap_or_else(|| render(&self.invoice.reference, values))
    }

    /// CreditNoteNumber for a return.
    pub fn credit_note_number(&self, values: &PatternValues<'_>) -> String {
        render(&self.invoice.credit_note_number, values)
    }

    /// The value of the first non-empty attribute mapped to `target`.
    pub fn field_value<'a>(
        &self,
        target: FieldTarget,
        attributes: &'a BTreeMap<String, String>,
    ) -> Option<&'a str> {
        self.fields
            .iter()
            .filter(|f| f.target == target)
            .filter_map(|f| attributes.get(&f.attribute))
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }

    /// Whether orders in `currency` are accepted.
    /// The organisation's option for `value` of tracking category `category`: the mapped one,
    /// else the value itself.
    pub fn tracking_option<'a>(&'a self, category: &str, value: &'a str) -> &'a str {
        self.tracking_options
            .get(category)
            .and_then(|m| m.get(value))
            .map_or(value, String::as_str)
    }

    pub fn currency_allowed(&self, currency: &str) -> bool {
        self.currency.allowed.is_empty() || self.currency.allowed.iter().any(|c| c == currency)
    }

    /// Tracking values for an order: attribute, else the first matching address rule, else the
    /// default. `country`/`region` are the normalised shipping (else billing) address.
    pub fn tracking_for(
        &self,
        attributes: &BTreeMap<String, String>,
        country: &str,
        region: &str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for dim in &self.tracking {
            let from_attr = dim
                .attribute
                .as_ref()
                .and_then(|a| attributes.get(a))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty());
            let value = from_attr
                .or_else(|| {
                    dim.rules
                        .iter()
                        .find(|r| r.matches(country, region))
                        .map(|r| r.value.as_str())
                })
                .or(dim.default.as_deref());
            if let Some(v) = value {
                out.insert(dim.name.clone(), v.to_owned());
            }
        }
        out
    }
}

impl TrackingRule {
    fn matches(&self, country: &str, region: &str) -> bool {
        let country_ok = self
            .country
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case(country));
        let region_ok =
            self.regions.is_empty() || self.regions.iter().any(|r| r.eq_ignore_ascii_case(region));
        country_ok && region_ok
    }
}
