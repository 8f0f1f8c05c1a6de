//! An order's lines as Xero lines: kinds, descriptions, discounts apportioned across tax codes,
//! tracking, and the rounding line that makes Xero's total the store's to the cent.

use super::{Problem, XLine, XTracking, dec, money, round2};
use crate::org::OrgSettings;
use ledgerline_contract::v1::{LineItem, LineKind, ReasonClass, Suggestion};
use ledgerline_mapping::Mapping;
use ledgerline_platform::dead_letter::fault;
use rust_decimal::{Decimal, RoundingStrategy};

/// Largest difference a rounding line may absorb; more means the data is wrong.
pub(super) const MAX_ROUNDING: Decimal = Decimal::from_parts(100, 0, 0, false, 2);

pub(super) fn kind_of(l: &LineItem) -> LineKind {
    LineKind::try_from(l.kind).unwrap_or(LineKind::Unspecified)
}

pub(super) fn description(l: &LineItem, kind: LineKind) -> String {
    let d = l.description.trim();
    if !d.is_empty() {
        return d.chars().take(4000).collect();
    }
    if !l.sku.is_empty() {
        return l.sku.clone();
    }
    match kind {
        LineKind::Shipping => "Shipping",
        LineKind::Handling => "Handling",
        LineKind::Fee => "Fee",
        LineKind::Discount => "Discount",
        LineKind::Rounding => "Rounding",
        _ => "Item",
    }
    .to_owned()
}

pub(super) struct Built {
    pub(super) lines: Vec<XLine>,
    pub(super) xero_total: Decimal,
    /// Tax as Xero will compute it (per line, rounded).
    pub(super) xero_tax: Decimal,
    pub(super) unitdp4: bool,
    pub(super) dropped_tracking: Vec<String>,
}

/// Builds the lines; when an untaxed order-level discount leaves Xero's tax above the store's
/// (the store's item taxes already reflect the discount), the discount is apportioned across
/// the document's tax codes by their share of the lines, which is how such a discount reduces
/// each rate's base, and that version is used if it explains the store's tax better.
pub(super) fn build_lines(
    lines: &[LineItem],
    tax_included: bool,
    tracking: &[(String, String)],
    mapping: &Mapping,
    org: &OrgSettings,
    allow_discount: bool,
) -> Result<Built, Problem> {
    let plain = build_lines_as_is(lines, tax_included, tracking, mapping, org, allow_discount)?;
    let untaxed_discount = lines
        .iter()
        .any(|l| kind_of(l) == LineKind::Discount && !l.taxable);
    if tax_included || !untaxed_discount {
        return Ok(plain);
    }
    let store_tax: Decimal = lines
        .iter()
        .map(|l| money(&l.tax_amount).unwrap_or_default())
        .sum();
    let Some(split) = apportion_discounts(lines, mapping) else {
        return Ok(plain);
    };
    match build_lines_as_is(&split, tax_included, tracking, mapping, org, allow_discount) {
        Ok(alt) if (alt.xero_tax - store_tax).abs() < (plain.xero_tax - store_tax).abs() => Ok(alt),
        _ => Ok(plain),
    }
}

/// Untaxed discount lines split across the taxable lines' codes, in proportion to their amounts.
pub(super) fn apportion_discounts(lines: &[LineItem], mapping: &Mapping) -> Option<Vec<LineItem>> {
    let is_split = |l: &LineItem| kind_of(l) == LineKind::Discount && !l.taxable;
    let mut bases: Vec<(String, bool, Decimal)> = Vec::new();
    for l in lines.iter().filter(|l| !is_split(l)) {
        let amount = money(&l.line_total).ok()?;
        let key = if l.taxable {
            l.source_tax_code.clone()
        } else {
            String::new()
        };
        match bases.iter_mut().find(|(k, _, _)| *k == key) {
            Some(b) => b.2 += amount,
            None => bases.push((key, l.taxable, amount)),
        }
    }
    let total: Decimal = bases.iter().map(|b| b.2).sum();
    if total <= Decimal::ZERO || bases.len() < 2 && bases.first().is_some_and(|b| !b.1) {
        return None;
    }
    let mut out = Vec::new();
    for l in lines {
        if !is_split(l) {
            out.push(l.clone());
            continue;
        }
        let amount = money(&l.line_total).ok()?;
        let mut left = amount;
        for (i, (code, taxable, base)) in bases.iter().enumerate() {
            let part = if i + 1 == bases.len() {
                left
            } else {
                round2(amount * *base / total)
            };
            left -= part;
            if part.is_zero() {
                continue;
            }
            let rate = mapping.tax_code(code).map(|c| c.rate).unwrap_or_default();
            let mut p = l.clone();
            p.quantity = "1".into();
            p.unit_price = Some(ledgerline_contract::v1::Money {
                amount: part.to_string(),
                currency: String::new(),
            });
            p.line_total = p.unit_price.clone();
            p.discount = None;
            p.source_tax_code = code.clone();
            p.taxable = *taxable;
            p.tax_rate = rate.to_string();
            p.tax_amount = None;
            out.push(p);
        }
    }
    Some(out)
}

pub(super) fn build_lines_as_is(
    lines: &[LineItem],
    tax_included: bool,
    tracking: &[(String, String)],
    mapping: &Mapping,
    org: &OrgSettings,
    allow_discount: bool,
) -> Result<Built, Problem> {
    let unitdp4 = lines.iter().any(|l| {
        l.unit_price
            .as_ref()
            .and_then(|m| dec(&m.amount).ok())
            .is_some_and(|u| u.normalize().scale() > 2)
    });
    let dp = if unitdp4 { 4 } else { 2 };
    let mut out = Vec::new();
    let mut total = Decimal::ZERO;
    let mut tax_total = Decimal::ZERO;
    let mut dropped = Vec::new();
    let mut track = Vec::new();
    for (cat, opt) in tracking.iter().take(2) {
        match org.tracking_option(cat, opt) {
            Some((name, option)) => track.push(XTracking { name, option }),
            None => dropped.push(format!("{cat}={opt}")),
        }
    }
    for l in lines {
        let kind = kind_of(l);
        let bad = |e: String| Problem {
            reason: ReasonClass::Invalid,
            error: e,
            suggestions: vec![],
            fault: None,
        };
        let qty = if l.quantity.trim().is_empty() {
            Decimal::ONE
        } else {
            dec(&l.quantity).map_err(bad)?
        };
        let unit = money(&l.unit_price).map_err(bad)?;
        let discount = money(&l.discount).map_err(bad)?;
        let account = mapping.account_for(kind, &l.source_tax_code).to_owned();
        let rate_hint = dec(&l.tax_rate).unwrap_or_default();
        let Some(tax_type) = mapping
            .tax_type_for(kind, &l.source_tax_code, l.taxable)
            .map(str::to_owned)
        else {
            let code = &l.source_tax_code;
            return Err(Problem::mapping(
                fault("unknown_tax_code", "tax_code", code),
                format!(
                    "no TaxType mapped for store tax code {code:?} (line {:?})",
                    l.description
                ),
                with_rules(org.suggest_tax_types(rate_hint, code), |s| {
                    format!(
                        "[tax_codes.{}]\nrate = \"{}\"\ntax_type = {:?}\n",
                        toml_key(code),
                        rate_hint.normalize(),
                        s.suggested_value
                    )
                }),
            ));
        };
        if !org.sales_account(&account) {
            let key = account_key(kind);
            return Err(Problem::mapping(
                fault("inactive_account", "AccountCode", &account),
                format!(
                    "AccountCode {account:?} for {kind:?} lines is not an active account in this organisation"
                ),
                with_rules(org.suggest_accounts(kind, &account), |s| {
                    format!("[accounts]\n{key} = {:?}\n", s.suggested_value)
                }),
            ));
        }
        let Some(rate_pct) = org.revenue_rate(&tax_type) else {
            let code = &l.source_tax_code;
            return Err(Problem::mapping(
                fault("invalid_tax_type", "TaxType", &tax_type),
                format!(
                    "TaxType {tax_type:?} (store code {code:?}) does not exist or cannot be used on sales"
                ),
                with_rules(org.suggest_tax_types(rate_hint, &tax_type), |s| {
                    if code.is_empty() {
                        // An untaxed line: its TaxType comes from `[tax]`.
                        format!("[tax]\nuntaxed_tax_type = {:?}\n", s.suggested_value)
                    } else {
                        format!(
                            "[tax_codes.{}]\ntax_type = {:?}\n",
                            toml_key(code),
                            s.suggested_value
                        )
                    }
                }),
            ));
        };
        let unit_r = unit.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
        let mut line = XLine {
            description: description(l, kind),
            quantity: qty,
            unit_amount: unit_r,
            discount_amount: None,
            account_code: account,
            tax_type,
            tracking: if kind == LineKind::Rounding {
                vec![]
            } else {
                track.clone()
            },
        };
        let rate = rate_pct / Decimal::ONE_HUNDRED;
        // Each Xero line amount equals the canonical line amount (net; gross when tax is
        // included), so what is left between the totals is Xero's per-line tax rounding.
        let target = match l
            .line_total
            .as_ref()
            .filter(|m| !m.amount.trim().is_empty())
        {
            Some(m) => {
                let net = dec(&m.amount).map_err(bad)?;
                if tax_included {
                    net + money(&l.tax_amount).map_err(bad)?
                } else {
                    net
                }
            }
            None => {
                // Canonical discounts are net of tax; grossed up for a tax-inclusive line.
                let d = if tax_included {
                    let line_rate = dec(&l.tax_rate).unwrap_or(rate);
                    round2(discount * (Decimal::ONE + line_rate))
                } else {
                    discount
                };
                round2(qty * unit_r - d)
            }
        };
        let plain = round2(qty * unit_r);
        if plain != target {
            let d = plain - target;
            if d > Decimal::ZERO && allow_discount {
                line.discount_amount = Some(d);
            } else {
                // Credit notes take no discounts (and a line above its price has none to
                // give): send the line amount itself, keeping the quantity in the text.
                if qty != Decimal::ONE {
                    line.description = format!("{} x {}", qty.normalize(), line.description)
                        .chars()
                        .take(4000)
                        .collect();
                }
                line.quantity = Decimal::ONE;
                line.unit_amount = target;
            }
        }
        let computed =
            round2(line.quantity * line.unit_amount - line.discount_amount.unwrap_or_default());
        let tax = if tax_included {
            round2(computed - computed / (Decimal::ONE + rate))
        } else {
            round2(computed * rate)
        };
        total += if tax_included {
            computed
        } else {
            computed + tax
        };
        tax_total += tax;
        out.push(line);
    }
    Ok(Built {
        lines: out,
        xero_total: total,
        xero_tax: tax_total,
        unitdp4,
        dropped_tracking: dropped,
    })
}

pub(super) fn rounding_line(diff: Decimal, mapping: &Mapping) -> XLine {
    XLine {
        description: "Rounding".into(),
        quantity: Decimal::ONE,
        unit_amount: diff,
        discount_amount: None,
        account_code: mapping.accounts.rounding.clone(),
        tax_type: mapping.tax.untaxed_tax_type.clone(),
        tracking: vec![],
    }
}

/// Sets each suggestion's mapping-overlay rule.
fn with_rules(
    mut suggestions: Vec<Suggestion>,
    rule: impl Fn(&Suggestion) -> String,
) -> Vec<Suggestion> {
    for s in &mut suggestions {
        s.rule = rule(s);
    }
    suggestions
}

/// The `[accounts]` key for a line kind.
fn account_key(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Product | LineKind::Unspecified => "product",
        LineKind::Shipping => "shipping",
        LineKind::Handling => "handling",
        LineKind::Fee => "fee",
        LineKind::Discount => "discount",
        LineKind::Rounding => "rounding",
    }
}

/// A store tax code as a TOML table key: bare when it can be, quoted otherwise.
fn toml_key(code: &str) -> String {
    if !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        code.to_owned()
    } else {
        format!("{code:?}")
    }
}
