//! The report for a terminal (tables) and for scripts (CSV, one fact per record: the same
//! content as the JSON, flat).

use super::build::{Line, Report};
use ledgerline_platform::text::{csv_record, table};
use rust_decimal::Decimal;
use std::io::Write;

/// An amount with two decimals.
pub fn money(d: Decimal) -> String {
    format!("{:.2}", d)
}

fn day(l: &Line) -> String {
    l.day.map_or_else(|| "total".to_owned(), |d| d.to_string())
}

/// The report as tables.
pub fn write_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "Reconciliation report: store {}, {} to {} ({}{})",
        r.store,
        r.from,
        r.to,
        r.timezone,
        if r.base_currency.is_empty() {
            String::new()
        } else {
            format!(", base currency {}", r.base_currency)
        }
    )?;
    if !r.org_known {
        writeln!(
            out,
            "The organisation's settings have not been read yet: days are UTC days."
        )?;
    }
    let unexplained_orders: std::collections::BTreeSet<&str> =
        r.unexplained.iter().map(|u| u.order_id.as_str()).collect();
    writeln!(
        out,
        "{} orders; {}\n",
        r.orders,
        if r.ties_out {
            "every difference explained: unexplained 0.00 in every currency".to_owned()
        } else {
            format!(
                "NOT TIED OUT: {} order(s) with an unexplained difference (listed below)",
                unexplained_orders.len()
            )
        }
    )?;
    let lines: Vec<&Line> = r.days.iter().chain(r.currencies.iter()).collect();
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                day(l),
                l.currency.clone(),
                l.orders.to_string(),
                l.cancelled.to_string(),
                money(l.gross),
                money(l.tax),
                money(l.shipping),
                money(l.discounts),
                money(l.xero.invoiced),
                money(l.xero.tax),
                money(l.paid),
                money(l.xero.paid),
                money(l.refunded),
                money(l.xero.credited),
                money(l.unexplained),
            ]
        })
        .collect();
    table(
        out,
        &[
            "DAY",
            "CUR",
            "ORDERS",
            "CANCELLED",
            "GROSS",
            "TAX",
            "SHIPPING",
            "DISCOUNTS",
            "XERO INVOICED",
            "XERO TAX",
            "PAID",
            "XERO PAID",
            "REFUNDED",
            "XERO CREDITED",
            "UNEXPLAINED",
        ],
        &rows,
    )?;
    let rows: Vec<Vec<String>> = lines
        .iter()
        .flat_map(|l| {
            l.xero
                .payments
                .iter()
                .map(|(a, v)| vec![day(l), l.currency.clone(), a.clone(), money(*v)])
                .chain(l.xero.refunds.iter().map(|(a, v)| {
                    vec![
                        day(l),
                        l.currency.clone(),
                        format!("{a} (refunds paid out)"),
                        money(-*v),
                    ]
                }))
        })
        .collect();
    if !rows.is_empty() {
        writeln!(out, "\nPayments received in Xero, per payment account")?;
        table(out, &["DAY", "CUR", "ACCOUNT", "AMOUNT"], &rows)?;
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .flat_map(|l| {
            l.explained.iter().map(|e| {
                vec![
                    day(l),
                    l.currency.clone(),
                    e.measure.as_str().to_owned(),
                    e.description.to_owned(),
                    e.finding.clone(),
                    money(e.amount),
                    e.orders.to_string(),
                    e.sample.join(" "),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        writeln!(out, "\nDifferences (store minus Xero) and their causes")?;
        table(
            out,
            &[
                "DAY", "CUR", "MEASURE", "CAUSE", "FINDING", "AMOUNT", "ORDERS", "E.G.",
            ],
            &rows,
        )?;
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .filter_map(|l| {
            let fx = l.fx.as_ref()?;
            Some(vec![
                day(l),
                l.currency.clone(),
                money(l.xero.invoiced),
                fx.base_currency.clone(),
                money(fx.invoiced_base),
                fx.rate.map(|r| r.to_string()).unwrap_or_default(),
                fx.converted.to_string(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        writeln!(
            out,
            "\nFX: each currency in the base currency, at the rates used"
        )?;
        table(
            out,
            &[
                "DAY",
                "CUR",
                "INVOICED",
                "BASE",
                "IN BASE",
                "RATE",
                "CONVERTED",
            ],
            &rows,
        )?;
    }
    if !r.unexplained.is_empty() {
        writeln!(out, "\nUnexplained, order by order")?;
        let rows: Vec<Vec<String>> = r
            .unexplained
            .iter()
            .map(|u| {
                vec![
                    u.day.map(|d| d.to_string()).unwrap_or_default(),
                    u.number.clone(),
                    u.currency.clone(),
                    u.measure.as_str().to_owned(),
                    money(u.amount),
                    u.finding.clone(),
                ]
            })
            .collect();
        table(
            out,
            &["DAY", "ORDER", "CUR", "MEASURE", "AMOUNT", "FINDING"],
            &rows,
        )?;
    }
    if !r.findings.is_empty() {
        writeln!(out, "\nUnresolved findings")?;
        let rows: Vec<Vec<String>> = r
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.day.map(|d| d.to_string()).unwrap_or_default(),
                    f.number.clone(),
                    f.order_id.clone(),
                    f.kind.clone(),
                ]
            })
            .collect();
        table(out, &["DAY", "ORDER", "ORDER ID", "KIND"], &rows)?;
    }
    if !r.held.is_empty() {
        writeln!(out, "\nHeld in the review queue")?;
        let rows: Vec<Vec<String>> = r
            .held
            .iter()
            .map(|h| {
                vec![
                    h.day.map(|d| d.to_string()).unwrap_or_default(),
                    h.number.clone(),
                    h.entry.clone(),
                ]
            })
            .collect();
        table(out, &["DAY", "ORDER", "ENTRY"], &rows)?;
    }
    Ok(())
}

/// CSV header.
pub const CSV_HEAD: [&str; 9] = [
    "record", "day", "currency", "item", "cause", "finding", "order", "amount", "count",
];

/// The report as CSV: one fact per record (`store`, `xero`, `payment`, `fx`, `difference`,
/// `explained`, `unexplained`, `finding`, `held`); a blank day is the range's total.
pub fn csv(r: &Report) -> String {
    let mut out = csv_record(&CSV_HEAD.map(str::to_owned));
    let mut rec = |fields: [String; 9]| out.push_str(&csv_record(&fields));
    let s = String::new;
    for l in r.days.iter().chain(r.currencies.iter()) {
        let d = l.day.map(|d| d.to_string()).unwrap_or_default();
        let c = l.currency.clone();
        for (item, n) in [("orders", l.orders), ("cancelled", l.cancelled)] {
            rec([
                "store".into(),
                d.clone(),
                c.clone(),
                item.into(),
                s(),
                s(),
                s(),
                s(),
                n.to_string(),
            ]);
        }
        for (item, v) in [
            ("gross", l.gross),
            ("tax", l.tax),
            ("shipping", l.shipping),
            ("discounts", l.discounts),
            ("paid", l.paid),
            ("refunded", l.refunded),
        ] {
            rec([
                "store".into(),
                d.clone(),
                c.clone(),
                item.into(),
                s(),
                s(),
                s(),
                money(v),
                s(),
            ]);
        }
        rec([
            "xero".into(),
            d.clone(),
            c.clone(),
            "invoices".into(),
            s(),
            s(),
            s(),
            s(),
            l.xero.invoices.to_string(),
        ]);
        for (item, v) in [
            ("invoiced", l.xero.invoiced),
            ("tax", l.xero.tax),
            ("rounding", l.xero.rounding),
            ("paid", l.xero.paid),
            ("credited", l.xero.credited),
        ] {
            rec([
                "xero".into(),
                d.clone(),
                c.clone(),
                item.into(),
                s(),
                s(),
                s(),
                money(v),
                s(),
            ]);
        }
        for (account, v) in &l.xero.payments {
            rec([
                "payment".into(),
                d.clone(),
                c.clone(),
                account.clone(),
                s(),
                s(),
                s(),
                money(*v),
                s(),
            ]);
        }
        for (account, v) in &l.xero.refunds {
            rec([
                "refund".into(),
                d.clone(),
                c.clone(),
                account.clone(),
                s(),
                s(),
                s(),
                money(-*v),
                s(),
            ]);
        }
        if let Some(fx) = &l.fx {
            rec([
                "fx".into(),
                d.clone(),
                c.clone(),
                fx.base_currency.clone(),
                s(),
                s(),
                s(),
                money(fx.invoiced_base),
                fx.converted.to_string(),
            ]);
            if let Some(rate) = fx.rate {
                rec([
                    "fx".into(),
                    d.clone(),
                    c.clone(),
                    "rate".into(),
                    s(),
                    s(),
                    s(),
                    rate.to_string(),
                    s(),
                ]);
            }
        }
        for (m, v) in &l.differences {
            rec([
                "difference".into(),
                d.clone(),
                c.clone(),
                m.as_str().into(),
                s(),
                s(),
                s(),
                money(*v),
                s(),
            ]);
        }
        for e in &l.explained {
            rec([
                "explained".into(),
                d.clone(),
                c.clone(),
                e.measure.as_str().into(),
                e.cause.as_str().into(),
                e.finding.clone(),
                e.sample.join(" "),
                money(e.amount),
                e.orders.to_string(),
            ]);
        }
    }
    for u in &r.unexplained {
        rec([
            "unexplained".into(),
            u.day.map(|d| d.to_string()).unwrap_or_default(),
            u.currency.clone(),
            u.measure.as_str().into(),
            "unexplained".into(),
            u.finding.clone(),
            u.number.clone(),
            money(u.amount),
            "1".into(),
        ]);
    }
    for f in &r.findings {
        rec([
            "finding".into(),
            f.day.map(|d| d.to_string()).unwrap_or_default(),
            s(),
            f.kind.clone(),
            s(),
            f.kind.clone(),
            f.number.clone(),
            s(),
            s(),
        ]);
    }
    for h in &r.held {
        rec([
            "held".into(),
            h.day.map(|d| d.to_string()).unwrap_or_default(),
            s(),
            h.entry.clone(),
            "in_review".into(),
            s(),
            h.number.clone(),
            s(),
            s(),
        ]);
    }
    out
}
