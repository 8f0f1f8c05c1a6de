//! Orders and refunds in a currency the organisation has not enabled, converted to its base
//! currency at the order's rate (the original kept in an attribute).

use super::dec;
use ledgerline_contract::v1::{LineItem, Order, RefundEvent};
use rust_decimal::{Decimal, RoundingStrategy};

/// Order attribute holding the original currency, total and rate of a converted order.
pub const FX_ATTRIBUTE: &str = "ledgerline.fx";

fn convert_money(
    m: &mut Option<ledgerline_contract::v1::Money>,
    base: &str,
    rate: Decimal,
    dp: u32,
) {
    if let Some(m) = m.as_mut()
        && let Ok(v) = dec(&m.amount)
    {
        m.amount = (v * rate)
            .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
            .to_string();
        m.currency = base.to_owned();
    }
}

fn convert_line(l: &mut LineItem, base: &str, rate: Decimal) {
    convert_money(&mut l.unit_price, base, rate, 4);
    convert_money(&mut l.discount, base, rate, 2);
    convert_money(&mut l.tax_amount, base, rate, 2);
    convert_money(&mut l.line_total, base, rate, 2);
}

/// An order in a currency the org lacks, converted to `base` at `rate` (base units per unit);
/// the original total, currency and rate are kept for the Reference.
pub fn convert_order(order: &Order, base: &str, rate: Decimal) -> Order {
    let mut o = order.clone();
    let original = o
        .totals
        .as_ref()
        .and_then(|t| t.total.as_ref())
        .map(|m| m.amount.clone())
        .unwrap_or_default();
    o.attributes.insert(
        FX_ATTRIBUTE.to_owned(),
        format!("{} {original} @ {}", order.currency, rate.normalize()),
    );
    o.currency = base.to_owned();
    o.lines.iter_mut().for_each(|l| convert_line(l, base, rate));
    if let Some(t) = o.totals.as_mut() {
        for m in [
            &mut t.subtotal,
            &mut t.shipping,
            &mut t.handling,
            &mut t.fees,
            &mut t.discounts,
            &mut t.tax,
            &mut t.total,
        ] {
            convert_money(m, base, rate, 2);
        }
    }
    for p in o.payments.iter_mut() {
        convert_money(&mut p.amount, base, rate, 2);
    }
    o
}

/// A refund of a converted order, converted the same way.
pub fn convert_refund(ev: &RefundEvent, base: &str, rate: Decimal) -> RefundEvent {
    let mut e = ev.clone();
    e.currency = base.to_owned();
    if let Some(r) = e.refund.as_mut() {
        convert_money(&mut r.amount, base, rate, 2);
        convert_money(&mut r.subtotal, base, rate, 2);
        convert_money(&mut r.tax, base, rate, 2);
        r.lines.iter_mut().for_each(|l| convert_line(l, base, rate));
    }
    e
}
