//! The report as a page: a chart per currency (daily order totals against Xero's, days with a
//! difference marked), then the tables of the terminal report, with links to the review queue
//! and to each order's findings. Server-rendered (maud, escaped), no script, no external asset.

use super::build::{Line, Report};
use super::text::money;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Where the page links to.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// The dead-letter service's page (e.g. `http://127.0.0.1:8094`), when known.
    pub dead_letter: Option<String>,
}

impl Links {
    fn queue(&self) -> Option<String> {
        self.dead_letter
            .as_ref()
            .map(|b| format!("{}/ui", b.trim_end_matches('/')))
    }

    fn entry(&self, id: &str) -> Option<String> {
        self.dead_letter
            .as_ref()
            .map(|b| format!("{}/ui/entries/{}", b.trim_end_matches('/'), urlencode(id)))
    }

    fn timeline(&self, store: &str, order: &str) -> Option<String> {
        self.dead_letter.as_ref().map(|b| {
            format!(
                "{}/ui/orders?store={}&order={}",
                b.trim_end_matches('/'),
                urlencode(store),
                urlencode(order)
            )
        })
    }
}

/// Percent-encodes a query or path part.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stylesheet (served at `/report/style.css`).
pub const CSS: &str = include_str!("style.css");

fn order_link(store: &str, id: &str) -> String {
    format!("/v1/orders/{}/{}", urlencode(store), urlencode(id))
}

/// The whole page.
pub fn render(r: &Report, links: &Links) -> Markup {
    let query = format!("store={}&from={}&to={}", urlencode(&r.store), r.from, r.to);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Reconciliation report · " (r.store) " · Ledgerline" }
                link rel="stylesheet" href="/report/style.css";
            }
            body {
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/report" { "Ledgerline" }
                        a href={ "/report?" (query) } aria-current="page" { "Reconciliation report" }
                        @if let Some(q) = links.queue() {
                            a href=(q) { "Review queue" }
                        }
                    }
                    form.range method="get" action="/report" {
                        label { "Store " input name="store" value=(r.store) size="10"; }
                        label { "From " input type="date" name="from" value=(r.from); }
                        label { "To " input type="date" name="to" value=(r.to); }
                        button type="submit" { "Show" }
                    }
                }
                main #main {
                    h1 { "Reconciliation report: " (r.store) }
                    p.muted {
                        (r.from) " to " (r.to) ", days in " (r.timezone)
                        @if !r.base_currency.is_empty() { ", base currency " (r.base_currency) }
                        ". " (r.orders) " orders. Made " (r.generated_at) " from the projection (no call to Xero). "
                        a href={ "/report?" (query) "&format=json" } { "JSON" } " · "
                        a href={ "/report?" (query) "&format=csv" } { "CSV" }
                    }
                    @if !r.org_known {
                        p.warn { "The organisation's settings have not been read from Xero yet: days are UTC days." }
                    }
                    @if r.ties_out {
                        p.ok #status role="status" { "Every difference is explained: the unexplained remainder is 0.00 in every currency." }
                    } @else {
                        p.bad #status role="status" {
                            "Not tied out: " (unexplained_orders(r)) " order(s) with a difference nobody can account for. "
                            a href="#unexplained" { "See them order by order." }
                        }
                    }
                    @for c in &r.currencies {
                        section.currency {
                            h2 { (c.currency) }
                            dl.cards {
                                div { dt { "Orders" } dd { (c.orders) } }
                                div { dt { "Order totals" } dd { (money(c.gross)) } }
                                div { dt { "Xero invoiced" } dd { (money(c.xero.invoiced)) } }
                                div { dt { "Payments in Xero" } dd { (money(c.xero.paid)) } }
                                div class=(if c.unexplained.is_zero() && !r.unexplained.iter().any(|u| u.currency == c.currency) { "good" } else { "alert" }) {
                                    dt { "Unexplained" } dd.unexplained { (money(c.unexplained)) }
                                }
                            }
                            (chart(&c.currency, &r.days, r.from, r.to))
                        }
                    }
                    h2 { "Per day" }
                    (daily(r))
                    (payments(r))
                    (explained(r))
                    (fx(r))
                    h2 #unexplained { "Unexplained, order by order" }
                    @if r.unexplained.is_empty() {
                        p.muted { "Nothing: every difference has a cause." }
                    } @else {
                        table {
                            thead { tr { th { "Day" } th { "Order" } th { "Currency" } th { "Measure" } th.num { "Amount" } th { "Finding" } th { "Links" } } }
                            tbody {
                                @for u in &r.unexplained {
                                    tr.bad-row {
                                        td { (u.day.map(|d| d.to_string()).unwrap_or_default()) }
                                        td { (u.number) }
                                        td { (u.currency) }
                                        td { (u.measure.as_str()) }
                                        td.num { (money(u.amount)) }
                                        td { (u.finding) }
                                        td {
                                            a href=(order_link(&r.store, &u.order_id)) { "findings" }
                                            @if let Some(t) = links.timeline(&r.store, &u.order_id) { " · " a href=(t) { "timeline" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h2 { "Unresolved findings" }
                    @if r.findings.is_empty() {
                        p.muted { "None." }
                    } @else {
                        table {
                            thead { tr { th { "Day" } th { "Order" } th { "Kind" } th { "Links" } } }
                            tbody {
                                @for f in &r.findings {
                                    tr {
                                        td { (f.day.map(|d| d.to_string()).unwrap_or_default()) }
                                        td { (f.number) }
                                        td { (f.kind) }
                                        td {
                                            a href=(order_link(&r.store, &f.order_id)) { "findings" }
                                            @if let Some(t) = links.timeline(&r.store, &f.order_id) { " · " a href=(t) { "timeline" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h2 { "Held in the review queue" }
                    @if r.held.is_empty() {
                        p.muted { "None." }
                    } @else {
                        table {
                            thead { tr { th { "Day" } th { "Order" } th { "Figures" } th { "Entry" } } }
                            tbody {
                                @for h in &r.held {
                                    tr {
                                        td { (h.day.map(|d| d.to_string()).unwrap_or_default()) }
                                        td { (h.number) }
                                        td { (if h.figures_known { "known" } else { "not yet normalised" }) }
                                        td {
                                            @match links.entry(&h.entry) {
                                                Some(e) => a href=(e) { (h.entry) },
                                                None => (h.entry),
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn unexplained_orders(r: &Report) -> usize {
    r.unexplained
        .iter()
        .map(|u| u.order_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// A round number at or above `v`, for the chart's top: 1, 2 or 5 times a power of ten.
fn nice(v: Decimal) -> Decimal {
    let mut step = Decimal::ONE;
    while step * Decimal::from(10) <= v {
        step *= Decimal::from(10);
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| step * Decimal::from(m))
        .find(|c| *c >= v)
        .unwrap_or(v)
}

fn lines(r: &Report) -> impl Iterator<Item = &Line> {
    r.days.iter().chain(r.currencies.iter())
}

fn day_cell(l: &Line) -> String {
    l.day.map_or_else(|| "Total".to_owned(), |d| d.to_string())
}

fn daily(r: &Report) -> Markup {
    html! {
        table.daily {
            thead {
                tr {
                    th { "Day" } th { "Cur" } th.num { "Orders" } th.num { "Cancelled" }
                    th.num { "Gross" } th.num { "Tax" } th.num { "Shipping" } th.num { "Discounts" }
                    th.num { "Xero invoiced" } th.num { "Xero tax" } th.num { "Rounding lines" }
                    th.num { "Paid" } th.num { "Xero paid" } th.num { "Refunded" } th.num { "Xero credited" }
                    th.num { "Unexplained" }
                }
            }
            tbody {
                @for l in lines(r) {
                    tr class=(if l.day.is_none() { "total" } else if !l.unexplained.is_zero() { "bad-row" } else { "" }) {
                        td { (day_cell(l)) } td { (l.currency) }
                        td.num { (l.orders) } td.num { (l.cancelled) }
                        td.num { (money(l.gross)) } td.num { (money(l.tax)) }
                        td.num { (money(l.shipping)) } td.num { (money(l.discounts)) }
                        td.num { (money(l.xero.invoiced)) } td.num { (money(l.xero.tax)) }
                        td.num { (money(l.xero.rounding)) }
                        td.num { (money(l.paid)) } td.num { (money(l.xero.paid)) }
                        td.num { (money(l.refunded)) } td.num { (money(l.xero.credited)) }
                        td.num { (money(l.unexplained)) }
                    }
                }
            }
        }
    }
}

fn payments(r: &Report) -> Markup {
    html! {
        h2 { "Payments received per payment account" }
        p.muted { "What Xero holds per bank account: what the bank feed is matched against." }
        table {
            thead { tr { th { "Day" } th { "Cur" } th { "Account" } th.num { "Amount" } } }
            tbody {
                @for l in lines(r) {
                    @for (a, v) in &l.xero.payments {
                        tr class=(if l.day.is_none() { "total" } else { "" }) {
                            td { (day_cell(l)) } td { (l.currency) } td { (a) } td.num { (money(*v)) }
                        }
                    }
                    @for (a, v) in &l.xero.refunds {
                        tr class=(if l.day.is_none() { "total refund" } else { "refund" }) {
                            td { (day_cell(l)) } td { (l.currency) } td { (a) " (refunds paid out)" } td.num { (money(-*v)) }
                        }
                    }
                }
            }
        }
    }
}

fn explained(r: &Report) -> Markup {
    html! {
        h2 { "Differences and their causes" }
        p.muted { "Store minus Xero, per figure. Tax rounding and the rounding line offset each other: the totals agree." }
        table {
            thead { tr { th { "Day" } th { "Cur" } th { "Measure" } th { "Cause" } th.num { "Amount" } th.num { "Orders" } th { "Orders, e.g." } } }
            tbody {
                @for l in lines(r) {
                    @for e in &l.explained {
                        tr class=(if e.cause == super::row::Cause::Unexplained { "bad-row" } else if l.day.is_none() { "total" } else { "" }) {
                            td { (day_cell(l)) } td { (l.currency) } td { (e.measure.as_str()) }
                            td { (e.description) @if !e.finding.is_empty() { " (" (e.finding) ")" } }
                            td.num { (money(e.amount)) } td.num { (e.orders) }
                            td.sample { (e.sample.join(" ")) }
                        }
                    }
                }
            }
        }
    }
}

fn fx(r: &Report) -> Markup {
    let any = lines(r).any(|l| l.fx.is_some());
    html! {
        @if any {
            h2 { "FX" }
            p.muted { "Each currency's invoices in the base currency, at the rates they were written at." }
            table {
                thead { tr { th { "Day" } th { "Cur" } th.num { "Invoiced" } th { "Base" } th.num { "In base" } th.num { "Rate" } th.num { "Converted by the writer" } } }
                tbody {
                    @for l in lines(r) {
                        @if let Some(f) = &l.fx {
                            tr class=(if l.day.is_none() { "total" } else { "" }) {
                                td { (day_cell(l)) } td { (l.currency) } td.num { (money(l.xero.invoiced)) }
                                td { (f.base_currency) } td.num { (money(f.invoiced_base)) }
                                td.num { (f.rate.map(|r| r.to_string()).unwrap_or_default()) }
                                td.num { (f.converted) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Daily order totals against Xero's as paired bars; a day with a difference is marked
/// (amber: explained; red: unexplained).
fn chart(currency: &str, lines: &[Line], from: chrono::NaiveDate, to: chrono::NaiveDate) -> Markup {
    // Every day of the range, a quiet one too: a gap is something to see.
    let quiet: Vec<Line> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| {
            !lines
                .iter()
                .any(|l| l.currency == currency && l.day == Some(*d))
        })
        .map(|d| Line {
            day: Some(d),
            currency: currency.to_owned(),
            ..Default::default()
        })
        .collect();
    let mut days: Vec<&Line> = lines
        .iter()
        .filter(|l| l.currency == currency)
        .chain(quiet.iter())
        .collect();
    days.sort_by_key(|l| l.day);
    let (w, h, left, bottom, top) = (900.0_f64, 260.0_f64, 70.0_f64, 40.0_f64, 20.0_f64);
    let max = days
        .iter()
        .flat_map(|l| [l.gross, l.xero.invoiced])
        .max()
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ONE);
    let max = nice(max);
    let plot_h = h - bottom - top;
    let slot = (w - left - 10.0) / days.len().max(1) as f64;
    let bar = (slot * 0.35).clamp(1.0, 24.0);
    // Heights as a share of the tallest bar in 1/10,000ths: the amounts stay decimal, only
    // the pixels are floating point.
    let share = |v: Decimal| -> f64 {
        let parts = (v.max(Decimal::ZERO) * Decimal::from(10_000) / max)
            .round()
            .to_i64()
            .unwrap_or(0);
        parts as f64 / 10_000.0
    };
    let y = |v: Decimal| top + plot_h - share(v) * plot_h;
    let label_every = (days.len() / 12).max(1);
    let mut svg = String::new();
    for i in 0..=4 {
        let v = (max * Decimal::from(i) / Decimal::from(4)).round();
        let yy = top + plot_h - plot_h * f64::from(i) / 4.0;
        svg += &format!(
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{}" y="{:.1}" class="axis" text-anchor="end">{}</text>"##,
            w - 10.0,
            left - 6.0,
            yy + 4.0,
            v
        );
    }
    for (i, l) in days.iter().enumerate() {
        let x0 = left + slot * i as f64 + slot / 2.0 - bar;
        let day = l.day.map(|d| d.to_string()).unwrap_or_default();
        svg += &format!(
            r##"<rect x="{x0:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" class="store"><title>{day} order totals {}</title></rect>"##,
            y(l.gross),
            (top + plot_h - y(l.gross)).max(0.0),
            money(l.gross)
        );
        svg += &format!(
            r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" class="xero"><title>{day} Xero invoiced {}</title></rect>"##,
            x0 + bar,
            y(l.xero.invoiced),
            (top + plot_h - y(l.xero.invoiced)).max(0.0),
            money(l.xero.invoiced)
        );
        let marked = if !l.unexplained.is_zero()
            || l.explained
                .iter()
                .any(|e| e.cause == super::row::Cause::Unexplained)
        {
            Some("mark-bad")
        } else if l.differences.contains_key(&super::row::Measure::Invoiced) {
            Some("mark-explained")
        } else {
            None
        };
        if let Some(class) = marked {
            let cx = x0 + bar;
            svg += &format!(
                r##"<path d="M{:.1} {:.1} l6 -10 h-12 z" class="{class}"><title>{day}: difference {}</title></path>"##,
                cx,
                top + 2.0,
                money(
                    l.differences
                        .get(&super::row::Measure::Invoiced)
                        .copied()
                        .unwrap_or_default()
                )
            );
        }
        if i % label_every == 0 {
            let short = l
                .day
                .map(|d| d.format("%d %b").to_string())
                .unwrap_or_default();
            svg += &format!(
                r##"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{short}</text>"##,
                x0 + bar,
                h - bottom + 16.0
            );
        }
    }
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (w) " " (h) } role="img" aria-label={ "Daily order totals against Xero invoiced, " (currency) } {
                (PreEscaped(svg))
            }
            figcaption {
                span.key.store-key {} " Order totals  "
                span.key.xero-key {} " Xero invoiced  "
                span.key.explained-key {} " difference, explained  "
                span.key.bad-key {} " difference, unexplained"
            }
        }
    }
}
