//! Property tests: the parser never panics, and for any consistent order the canonical lines sum
//! exactly to its totals, under both discount rules.

use ledgerline_mapping::{DiscountRule, Effective, TaxDifferenceRule};
use normalizer::transform::{Message, transform};
use proptest::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;

fn r2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

#[derive(Debug, Clone)]
struct ItemSpec {
    qty: u32,
    /// Price in ten-thousandths (4 dp).
    price: u32,
    code: &'static str,
    discount_pct: u32,
}

fn item() -> impl Strategy<Value = ItemSpec> {
    (
        1u32..20,
        0u32..5_000_000,
        prop::sample::select(vec!["GST15", "GST10", "GST0"]),
        0u32..=100,
    )
        .prop_map(|(qty, price, code, discount_pct)| ItemSpec {
            qty,
            price,
            code,
            discount_pct,
        })
}

fn rate(code: &str) -> Decimal {
    match code {
        "GST15" => Decimal::new(15, 2),
        "GST10" => Decimal::new(10, 2),
        _ => Decimal::ZERO,
    }
}

/// A consistent order, priced the store's way, as JSON text.
fn order_json(
    items: &[ItemSpec],
    shipping: u32,
    unallocated: u32,
    tax_included: bool,
    cent_off: i64,
) -> (String, Decimal) {
    let mut sub = Decimal::ZERO;
    let mut alloc_sum = Decimal::ZERO;
    let mut tax_exact = Decimal::ZERO;
    let mut out_items = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let price = Decimal::new(it.price as i64, 4);
        let r = rate(it.code);
        let gross = Decimal::from(it.qty) * price;
        let net = if tax_included {
            r2(gross / (Decimal::ONE + r))
        } else {
            r2(gross)
        };
        let disc = r2(net * Decimal::from(it.discount_pct) / Decimal::from(100));
        let ext = ((net - disc) * r).round_dp(4);
        sub += net;
        alloc_sum += disc;
        tax_exact += (net - disc) * r;
        out_items.push(json!({
            "ID": i, "Sku": format!("S{i}"), "Name": format!("Item {i}"), "Quantity": it.qty,
            "UnitSoldPrice": price.to_string(), "ProductIsTaxable": true, "ProductTaxCode": it.code,
            "ExtendedTaxAmount": ext.to_string(),
            "Discounts": if disc.is_zero() { json!([]) } else { json!([{"SlaveName": "D", "DiscountTotal": disc.to_string()}]) },
        }));
    }
    let shipping = Decimal::new(shipping as i64, 2);
    let order_rate = Decimal::new(15, 2);
    // A store never discounts tax below zero: the unallocated discount (taxed at the order's
    // rate) stops where the order's tax would turn negative.
    let tax_floor =
        (shipping + tax_exact / order_rate).round_dp_with_strategy(2, RoundingStrategy::ToZero);
    let unallocated = Decimal::new(unallocated as i64, 2)
        .min(sub - alloc_sum)
        .min(tax_floor);
    let tax = (r2(tax_exact + (shipping - unallocated) * order_rate) + Decimal::new(cent_off, 2))
        .max(Decimal::ZERO);
    let discounts = -(alloc_sum + unallocated);
    let total = sub + shipping + discounts + tax;
    let body = json!({
        "id": "evt_prop", "type": "sales_order.created", "timestamp": "2026-11-20T09:15:02.123Z",
        "api_version": "2026-11", "store": {"CustomKey": "main"},
        "data": {
            "ID": 1, "CustomKey": "SO-1", "Version": 1, "StatusKey": "Pending", "CurrencyKey": "NZD",
            "TaxIncluded": tax_included,
            "Totals": {"SubTotal": sub.to_string(), "Shipping": shipping.to_string(), "Handling": "0", "Fees": "0",
                       "Discounts": discounts.to_string(), "Tax": tax.to_string(), "Total": total.to_string()},
            "SalesItems": out_items,
        }
    });
    (body.to_string(), total)
}

fn sums(events: &[normalizer::transform::Canonical]) -> (Decimal, Decimal) {
    let Message::Order(e) = &events[0].message else {
        panic!("order first")
    };
    let o = e.order.as_ref().unwrap();
    let amount = |m: &Option<ledgerline_contract::v1::Money>| {
        m.as_ref().unwrap().amount.parse::<Decimal>().unwrap()
    };
    let net = o.lines.iter().map(|l| amount(&l.line_total)).sum();
    let tax = o.lines.iter().map(|l| amount(&l.tax_amount)).sum();
    (net, tax)
}

fn mapping(rule: DiscountRule, diff: TaxDifferenceRule) -> Effective {
    let mut e = Effective::defaults();
    e.mapping.lines.unallocated_discount = rule;
    e.mapping.lines.tax_difference = diff;
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = transform(&bytes, None, &Effective::defaults());
    }

    #[test]
    fn parser_never_panics_on_mutated_orders(cut in 0usize..4000, byte in any::<u8>()) {
        let mut body = crate::helpers::example("example_sales_order_created.json");
        let i = cut % body.len();
        body[i] = byte;
        let _ = transform(&body, None, &Effective::defaults());
    }

    #[test]
    fn lines_sum_exactly_to_the_totals(
        items in prop::collection::vec(item(), 1..30),
        shipping in 0u32..5000,
        unallocated in 0u32..3000,
        tax_included in any::<bool>(),
        cent_off in -2i64..=2,
        allocate in any::<bool>(),
        rounding_line in any::<bool>(),
    ) {
        let (body, total) = order_json(&items, shipping, unallocated, tax_included, cent_off);
        let rule = if allocate { DiscountRule::Allocate } else { DiscountRule::Line };
        let diff = if rounding_line { TaxDifferenceRule::RoundingLine } else { TaxDifferenceRule::LargestLine };
        let events = transform(body.as_bytes(), None, &mapping(rule, diff)).map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        let (net, tax) = sums(&events);
        prop_assert_eq!(net + tax, total);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let t = &v["data"]["Totals"];
        let d = |k: &str| t[k].as_str().unwrap().parse::<Decimal>().unwrap();
        if !rounding_line {
            let Message::Order(e) = &events[0].message else { unreachable!() };
            let lines = &e.order.as_ref().unwrap().lines;
            let is_rounding = |l: &ledgerline_contract::v1::LineItem| {
                l.kind == ledgerline_contract::v1::LineKind::Rounding as i32
            };
            if lines.iter().any(is_rounding) {
                // Only when no taxable line carries tax to absorb the difference.
                let zero = |m: &Option<ledgerline_contract::v1::Money>| {
                    m.as_ref().is_none_or(|m| m.amount.parse::<Decimal>().unwrap().is_zero())
                };
                prop_assert!(lines.iter().all(|l| is_rounding(l) || zero(&l.tax_amount)), "{body}");
            } else {
                prop_assert_eq!(tax, d("Tax"));
                prop_assert_eq!(net, d("SubTotal") + d("Shipping") + d("Discounts"));
            }
        }
    }
}
