//! Canonical lines from a Clarity order or return: product lines with their discount
//! allocations, shipping/handling/fee lines, the unallocated discount, and the tax difference.
//!
//! Invariants of the result (checked by property tests):
//! - `Σ line_total + Σ tax_amount == Totals.Total`;
//! - with `tax_difference = "largest_line"`: `Σ line_total == SubTotal + Shipping + Handling +
//!   Fees + Discounts` and `Σ tax_amount == Tax`.

use crate::clarity::{SalesItem, Totals};
use crate::error::TransformError;
use ledgerline_mapping::{DiscountRule, Mapping, TaxDifferenceRule};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeMap;

/// Rounds money to 2 dp, half away from zero (the store's rule).
pub fn r2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// What a canonical line is, before it becomes protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sold item.
    Product,
    /// Shipping.
    Shipping,
    /// Handling.
    Handling,
    /// Fees.
    Fee,
    /// Unallocated discount.
    Discount,
    /// Tax rounding.
    Rounding,
}

/// One line, in decimals.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Kind.
    pub kind: Kind,
    /// Index into the source items (product lines).
    pub item: Option<usize>,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price as the store priced it (tax-inclusive when the order is).
    pub unit_price: Decimal,
    /// Discount allocated to the line, net of tax (positive).
    pub discount: Decimal,
    /// Net amount after discount, 2 dp.
    pub line_total: Decimal,
    /// Tax, 2 dp.
    pub tax_amount: Decimal,
    /// Rate as a fraction.
    pub tax_rate: Decimal,
    /// Store tax code.
    pub tax_code: String,
    /// Whether taxable.
    pub taxable: bool,
}

/// Lines and the facts found while building them.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The lines.
    pub lines: Vec<Line>,
    /// The code applied to shipping, handling and fees.
    pub order_tax_code: String,
}

/// Builds the lines of an order (or a return) and checks them against its totals.
pub fn build(
    items: &[SalesItem],
    totals: &Totals,
    tax_included: bool,
    mapping: &Mapping,
) -> Result<Built, TransformError> {
    check_totals(totals)?;
    let mut lines = Vec::with_capacity(items.len() + 4);
    // Exact (unrounded) item tax, for choosing the extras' rate.
    let mut exact_item_tax = Decimal::ZERO;
    let mut code_weight: BTreeMap<&str, Decimal> = BTreeMap::new();
    for (idx, item) in items.iter().enumerate() {
        let code = item.product_tax_code.as_deref().unwrap_or("").trim();
        let rate = if item.product_is_taxable {
            mapping
                .tax_code(code)
                .ok_or_else(|| {
                    TransformError::Mapping(format!(
                        "item {}: tax code {code:?} is not in the mapping's [tax_codes]",
                        item.id
                    ))
                })?
                .rate
        } else {
            Decimal::ZERO
        };
        if item.quantity < Decimal::ZERO || item.unit_sold_price < Decimal::ZERO {
            return Err(TransformError::Invalid(format!(
                "item {}: negative quantity or price",
                item.id
            )));
        }
        let gross = item.quantity * item.unit_sold_price;
        let net = if tax_included {
            r2(gross / (Decimal::ONE + rate))
        } else {
            r2(gross)
        };
        let mut discount = Decimal::ZERO;
        for d in &item.discounts {
            if d.discount_total < Decimal::ZERO {
                return Err(TransformError::Invalid(format!(
                    "item {}: discount allocation {} is negative",
                    item.id, d.discount_total
                )));
            }
            discount += d.discount_total;
        }
        if discount > net {
            return Err(TransformError::Invalid(format!(
                "item {}: discounts {discount} exceed the line's net amount {net}",
                item.id
            )));
        }
        let line_total = net - discount;
        let exact_tax = item.extended_tax_amount.unwrap_or(line_total * rate);
        exact_item_tax += exact_tax;
        if item.product_is_taxable {
            *code_weight.entry(code).or_default() += line_total;
        }
        lines.push(Line {
            kind: Kind::Product,
            item: Some(idx),
            quantity: item.quantity,
            unit_price: item.unit_sold_price,
            discount,
            line_total,
            tax_amount: r2(exact_tax),
            tax_rate: rate,
            tax_code: code.to_owned(),
            taxable: item.product_is_taxable,
        });
    }
    let nets: Decimal = lines.iter().map(|l| l.line_total + l.discount).sum();
    if nets != totals.sub_total {
        return Err(TransformError::Invalid(format!(
            "Totals.SubTotal {} is not the sum of the items' net amounts {nets}",
            totals.sub_total
        )));
    }
    let allocated: Decimal = lines.iter().map(|l| l.discount).sum();
    let unallocated = -totals.discounts - allocated;
    if unallocated < Decimal::ZERO {
        return Err(TransformError::Invalid(format!(
            "item discounts {allocated} exceed Totals.Discounts {}",
            totals.discounts
        )));
    }

    // The extras' code: the candidate whose rate best explains the order's Tax; the code
    // carrying most of the order's value wins a tie (it is the store's usual rate).
    let extras = totals.shipping + totals.handling + totals.fees;
    let mut candidates: Vec<(&str, Decimal)> = code_weight.iter().map(|(c, w)| (*c, *w)).collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let default_code = mapping.tax.default_code.as_str();
    // Then the default, then every other mapped code: an order of untaxed items can still have
    // taxed shipping, at a rate no item shows.
    for code in std::iter::once(default_code).chain(mapping.tax_codes.keys().map(String::as_str)) {
        if !candidates.iter().any(|(c, _)| *c == code) {
            candidates.push((code, Decimal::ZERO));
        }
    }
    // An unallocated discount either reduced the taxed base at the order's rate, or (a return
    // of untaxed items, a discount on an exempt item) did not touch tax: whichever explains `Tax`.
    let discount_models: &[bool] = if unallocated > Decimal::ZERO {
        &[true, false]
    } else {
        &[true]
    };
    let (order_code, order_rate, discount_taxed) = discount_models
        .iter()
        .flat_map(|taxed| {
            candidates
                .iter()
                .filter_map(|(c, _)| mapping.tax_code(c).map(|t| (*c, t.rate, *taxed)))
        })
        .min_by_key(|(_, rate, taxed)| {
            let base = if *taxed { extras - unallocated } else { extras };
            (totals.tax - r2(exact_item_tax + base * *rate)).abs()
        })
        .map(|(c, r, t)| (c.to_owned(), r, t))
        .unwrap_or_else(|| (default_code.to_owned(), Decimal::ZERO, true));

    // The input is checked against the store's own model; the allocation rule applies after.
    if unallocated > Decimal::ZERO {
        let (rate, code) = if discount_taxed {
            (order_rate, order_code.clone())
        } else {
            (Decimal::ZERO, String::new())
        };
        let discount_tax = r2(unallocated * rate);
        lines.push(Line {
            kind: Kind::Discount,
            item: None,
            quantity: Decimal::ONE,
            // Like every other unit price of a tax-inclusive order, the discount line's is gross.
            unit_price: if tax_included {
                -(unallocated + discount_tax)
            } else {
                -unallocated
            },
            discount: Decimal::ZERO,
            line_total: -unallocated,
            tax_amount: -discount_tax,
            tax_rate: rate,
            tax_code: code,
            taxable: discount_taxed && !rate.is_zero(),
        });
    }
    for (kind, amount) in [
        (Kind::Shipping, totals.shipping),
        (Kind::Handling, totals.handling),
        (Kind::Fee, totals.fees),
    ] {
        if amount.is_zero() {
            continue;
        }
        let tax = r2(amount * order_rate);
        lines.push(Line {
            kind,
            item: None,
            quantity: Decimal::ONE,
            unit_price: if tax_included { amount + tax } else { amount },
            discount: Decimal::ZERO,
            line_total: amount,
            tax_amount: tax,
            tax_rate: order_rate,
            tax_code: order_code.clone(),
            taxable: !order_rate.is_zero(),
        });
    }

    let line_tax: Decimal = lines.iter().map(|l| l.tax_amount).sum();
    let diff = totals.tax - line_tax;
    let tolerance = mapping.lines.tax_tolerance + Decimal::new(5, 3) * Decimal::from(lines.len());
    if diff.abs() > tolerance {
        return Err(TransformError::Invalid(format!(
            "Totals.Tax {} differs from the lines' tax {line_tax} by {diff} (tolerance {tolerance})",
            totals.tax
        )));
    }
    if unallocated > Decimal::ZERO && mapping.lines.unallocated_discount == DiscountRule::Allocate {
        lines.retain(|l| l.kind != Kind::Discount);
        allocate(&mut lines, unallocated)?;
    }
    let diff = totals.tax - lines.iter().map(|l| l.tax_amount).sum::<Decimal>();
    if !diff.is_zero() {
        let largest = lines
            .iter_mut()
            .filter(|l| l.taxable && !l.tax_amount.is_zero())
            .max_by(|a, b| a.tax_amount.abs().cmp(&b.tax_amount.abs()));
        match (mapping.lines.tax_difference, largest) {
            (TaxDifferenceRule::LargestLine, Some(line)) => line.tax_amount += diff,
            _ => lines.push(Line {
                kind: Kind::Rounding,
                item: None,
                quantity: Decimal::ONE,
                unit_price: diff,
                discount: Decimal::ZERO,
                line_total: diff,
                tax_amount: Decimal::ZERO,
                tax_rate: Decimal::ZERO,
                tax_code: String::new(),
                taxable: false,
            }),
        }
    }
    let sum: Decimal = lines.iter().map(|l| l.line_total + l.tax_amount).sum();
    debug_assert_eq!(sum, totals.total, "lines must sum to the order's total");
    if sum != totals.total {
        return Err(TransformError::Invalid(format!(
            "lines sum to {sum}, Totals.Total is {}",
            totals.total
        )));
    }
    Ok(Built {
        lines,
        order_tax_code: order_code,
    })
}

/// `Total = SubTotal + Shipping + Handling + Fees + Discounts + Tax`, amounts at 2 dp.
pub fn check_totals(t: &Totals) -> Result<(), TransformError> {
    let all = [
        ("SubTotal", t.sub_total),
        ("Shipping", t.shipping),
        ("Handling", t.handling),
        ("Fees", t.fees),
        ("Discounts", t.discounts),
        ("Tax", t.tax),
        ("Total", t.total),
    ];
    for (name, v) in all {
        if r2(v) != v {
            return Err(TransformError::Invalid(format!(
                "Totals.{name} {v} has more than 2 decimal places"
            )));
        }
    }
    for (name, v) in [
        ("SubTotal", t.sub_total),
        ("Shipping", t.shipping),
        ("Handling", t.handling),
        ("Fees", t.fees),
        ("Tax", t.tax),
    ] {
        if v < Decimal::ZERO {
            return Err(TransformError::Invalid(format!(
                "Totals.{name} {v} is negative"
            )));
        }
    }
    if t.discounts > Decimal::ZERO {
        return Err(TransformError::Invalid(format!(
            "Totals.Discounts {} must be zero or negative",
            t.discounts
        )));
    }
    let sum = t.sub_total + t.shipping + t.handling + t.fees + t.discounts + t.tax;
    if sum != t.total {
        return Err(TransformError::Invalid(format!(
            "totals identity broken: SubTotal + Shipping + Handling + Fees + Discounts + Tax = {sum}, Total = {}",
            t.total
        )));
    }
    Ok(())
}

/// Spreads `amount` over product lines in proportion to their net amounts, to the cent (largest
/// remainder), and recomputes their tax.
fn allocate(lines: &mut [Line], amount: Decimal) -> Result<(), TransformError> {
    let base: Decimal = lines
        .iter()
        .filter(|l| l.kind == Kind::Product)
        .map(|l| l.line_total)
        .sum();
    if base < amount || base.is_zero() {
        return Err(TransformError::Invalid(format!(
            "unallocated discount {amount} exceeds the product lines' net amount {base}"
        )));
    }
    let cent = Decimal::new(1, 2);
    let mut shares: Vec<(usize, Decimal, Decimal)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == Kind::Product && !l.line_total.is_zero())
        .map(|(i, l)| {
            let exact = amount * l.line_total / base;
            let floor = exact.round_dp_with_strategy(2, RoundingStrategy::ToZero);
            (i, floor, exact - floor)
        })
        .collect();
    let mut left = amount - shares.iter().map(|s| s.1).sum::<Decimal>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2).then(a.cmp(b)));
    for k in order {
        if left <= Decimal::ZERO {
            break;
        }
        shares[k].1 += cent;
        left -= cent;
    }
    for (i, share, _) in shares {
        let l = &mut lines[i];
        let share = share.min(l.line_total);
        l.discount += share;
        l.line_total -= share;
        l.tax_amount = r2(l.line_total * l.tax_rate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clarity::ItemDiscount;
    use ledgerline_mapping::Effective;
    use rust_decimal_macros::dec;

    fn item(
        id: i64,
        qty: Decimal,
        price: Decimal,
        code: &str,
        taxable: bool,
        tax: Decimal,
    ) -> SalesItem {
        SalesItem {
            id,
            sku: None,
            name: None,
            quantity: qty,
            unit_sold_price: price,
            product_is_taxable: taxable,
            product_tax_code: Some(code.to_owned()),
            extended_tax_amount: Some(tax),
            discounts: vec![],
            serializable_attributes: Default::default(),
            sales_order_item_id: None,
        }
    }

    fn totals(sub: Decimal, ship: Decimal, disc: Decimal, tax: Decimal) -> Totals {
        Totals {
            sub_total: sub,
            shipping: ship,
            handling: Decimal::ZERO,
            fees: Decimal::ZERO,
            discounts: disc,
            tax,
            total: sub + ship + disc + tax,
        }
    }

    #[test]
    fn shipping_takes_the_rate_that_explains_the_tax() {
        let m = Effective::defaults().mapping;
        // An untaxed item; shipping taxed at 10 %: no item shows that rate.
        let items = [item(1, dec!(1), dec!(50), "GST0", false, dec!(0))];
        let b = build(
            &items,
            &totals(dec!(50), dec!(10), dec!(0), dec!(1.00)),
            false,
            &m,
        )
        .unwrap();
        assert_eq!(b.order_tax_code, "GST10");
        assert_eq!(b.lines[1].tax_amount, dec!(1.00));
    }

    #[test]
    fn an_untaxed_unallocated_discount_is_recognised() {
        let m = Effective::defaults().mapping;
        let items = [item(1, dec!(2), dec!(46), "GST0", false, dec!(0))];
        let t = totals(dec!(92), dec!(9.53), dec!(-5), dec!(0.95));
        let b = build(&items, &t, false, &m).unwrap();
        let d = b.lines.iter().find(|l| l.kind == Kind::Discount).unwrap();
        assert_eq!(
            (d.line_total, d.tax_amount, d.taxable),
            (dec!(-5), dec!(0), false)
        );
    }

    #[test]
    fn allocation_spreads_to_the_cent() {
        let mut m = Effective::defaults().mapping;
        m.lines.unallocated_discount = DiscountRule::Allocate;
        let items = [
            item(1, dec!(1), dec!(10), "GST15", true, dec!(1.5)),
            item(2, dec!(1), dec!(10), "GST15", true, dec!(1.5)),
            item(3, dec!(1), dec!(10), "GST15", true, dec!(1.5)),
        ];
        // 10.00 over three equal lines: 3.34 + 3.33 + 3.33.
        let t = totals(dec!(30), dec!(0), dec!(-10), dec!(3.00));
        let b = build(&items, &t, false, &m).unwrap();
        let discounts: Vec<Decimal> = b.lines.iter().map(|l| l.discount).collect();
        assert_eq!(discounts, [dec!(3.34), dec!(3.33), dec!(3.33)]);
        let sum: Decimal = b.lines.iter().map(|l| l.line_total + l.tax_amount).sum();
        assert_eq!(sum, t.total);
    }

    #[test]
    fn allocations_beyond_the_line_are_invalid() {
        let m = Effective::defaults().mapping;
        let mut it = item(1, dec!(1), dec!(10), "GST15", true, dec!(0));
        it.discounts = vec![ItemDiscount {
            slave_name: None,
            discount_total: dec!(11),
        }];
        let err = build(
            &[it],
            &totals(dec!(10), dec!(0), dec!(-11), dec!(0)),
            false,
            &m,
        )
        .unwrap_err();
        assert!(matches!(err, TransformError::Invalid(_)), "{err}");
    }
}
