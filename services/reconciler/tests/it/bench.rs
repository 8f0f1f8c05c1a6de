//! Benchmarks (ignored by default; figures printed, see the README):
//!
//! - how soon drift is found: through Xero's webhooks, and by polling alone;
//! - what the reconciler spends in Xero: calls and egress of its reads while orders are written,
//!   and per poll, for a day of 1,000 orders;
//! - whether the projection keeps up with 1,000 events/s, and the reconciler's peak RSS.
//!
//! `cargo build --release --workspace --bins && cargo nextest run --release -p reconciler
//! --run-ignored only bench_ --no-capture`

use crate::helpers::*;
use ledgerline_contract::subjects;
use ledgerline_contract::v1::{
    Money, OrderEventType, OrderStatus, XeroDocumentKind, XeroFact, XeroVerb,
};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// The sum of every sample of `name` in a Prometheus text page.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The reconciler's own Xero calls (token requests left out) and response bytes so far.
async fn spent(stack: &Stack) -> (f64, f64) {
    let text = stack
        .http
        .get(format!("{}/metrics", stack.recon.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tokens: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("xero_client_calls_total") && l.contains("endpoint=\"/connect/token\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (
        metric_sum(&text, "xero_client_calls_total") - tokens,
        metric_sum(&text, "xero_client_egress_bytes_total"),
    )
}

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "min {:?}, median {:?}, max {:?} (n = {})",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1],
        v.len()
    )
}

async fn write_orders(stack: &Stack, first: u32, n: u32, paid: bool) {
    for i in first..first + n {
        let id = i.to_string();
        let (status, ty) = if paid {
            (OrderStatus::Paid, OrderEventType::Paid)
        } else {
            (OrderStatus::Confirmed, OrderEventType::Created)
        };
        let o = order(&id, 1, status, paid);
        stack.publish(&event(&o, ty, &format!("e{id}"))).await;
    }
    let want = n as usize;
    assert!(
        eventually(Duration::from_secs(300), || async {
            let docs = stack.documents().await;
            let have = docs["Invoices"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| {
                    i["InvoiceNumber"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("SO-"))
                        .and_then(|s| s.parse::<u32>().ok())
                        .is_some_and(|k| (first..first + n).contains(&k))
                        && (!paid || i["Status"] == "PAID")
                })
                .count();
            have == want
        })
        .await,
        "{}",
        stack.output()
    );
}

/// Voids each order's invoice as a person would and times until `changed_in_xero` opens.
async fn time_voids(stack: &Stack, ids: &[String]) -> Vec<Duration> {
    let mut took = Vec::new();
    for id in ids {
        let inv = stack.invoice(&format!("SO-{id}")).await.unwrap();
        let xid = inv["InvoiceID"].as_str().unwrap().to_owned();
        let started = Instant::now();
        stack
            .as_accountant(
                Method::POST,
                &format!("/Invoices/{xid}"),
                json!({"Invoices": [{"InvoiceID": xid, "Status": "VOIDED"}]}),
            )
            .await;
        assert!(
            eventually(Duration::from_secs(120), || async {
                stack
                    .findings()
                    .await
                    .iter()
                    .any(|(k, o)| k == "changed_in_xero" && o == &format!("main/{id}"))
            })
            .await,
            "{}",
            stack.output()
        );
        took.push(started.elapsed());
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn bench_drift_found_and_what_observing_costs() {
    // Through webhooks (the poll an hour away).
    let stack = Stack::start(&[("RECON_POLL_INTERVAL", "1h")]).await;
    let (calls0, bytes0) = spent(&stack).await;
    write_orders(&stack, 10_000, 200, true).await;
    assert!(eventually(WAIT, || async { stack.recon_caught_up().await }).await);
    // Webhooks of the writer's own writes settle a second after they arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (calls1, bytes1) = spent(&stack).await;
    println!(
        "BENCH webhooks while the writer wrote 200 paid orders: {} reconciler calls, {} bytes (own writes skipped)",
        calls1 - calls0,
        bytes1 - bytes0
    );
    write_orders(&stack, 11_000, 5, false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: Vec<String> = (11_000..11_005).map(|i| i.to_string()).collect();
    let by_webhook = time_voids(&stack, &ids).await;
    let (calls2, bytes2) = spent(&stack).await;
    println!(
        "BENCH drift found through webhooks: {}; {} calls, {} bytes for 5 changes",
        quantiles(by_webhook),
        calls2 - calls1,
        bytes2 - bytes1
    );
    drop(stack);

    // By polling alone, every 5 s (36 calls a minute: the whole minute share, not a day's).
    let interval = Duration::from_secs(5);
    let stack = Stack::start_with(
        &[("RECON_POLL_INTERVAL", "5s"), ("RECON_DAY_SHARE", "1.0")],
        false,
    )
    .await;
    // An idle poll: nothing changed since the last.
    tokio::time::sleep(interval * 2).await;
    let (c0, b0) = spent(&stack).await;
    tokio::time::sleep(interval * 6).await;
    let (c1, b1) = spent(&stack).await;
    let idle_calls = (c1 - c0) / 6.0;
    let idle_bytes = (b1 - b0) / 6.0;
    println!("BENCH idle poll: {idle_calls:.1} calls, {idle_bytes:.0} bytes");
    // 200 paid orders: read back by the polls after.
    write_orders(&stack, 20_000, 200, true).await;
    tokio::time::sleep(interval * 3).await;
    let (c2, b2) = spent(&stack).await;
    let per_order_calls = (c2 - c1 - idle_calls * 3.0).max(0.0) / 200.0;
    let per_order_bytes = (b2 - b1 - idle_bytes * 3.0).max(0.0) / 200.0;
    println!(
        "BENCH polls reading 200 paid orders: {} calls, {} bytes ({per_order_bytes:.0} bytes an order)",
        c2 - c1,
        b2 - b1
    );
    write_orders(&stack, 21_000, 3, false).await;
    let ids: Vec<String> = (21_000..21_003).map(|i| i.to_string()).collect();
    let by_poll = time_voids(&stack, &ids).await;
    println!(
        "BENCH drift found by polling every {interval:?} (no webhooks): {}",
        quantiles(by_poll.clone())
    );
    assert!(
        by_poll.iter().all(|d| *d < interval * 3),
        "within a polling interval or so: {by_poll:?}\n{}",
        stack.output()
    );
    // A day of 1,000 orders at the default intervals (10 % of the day in three reads a poll).
    for (tier, day) in [("Starter", 1_000.0), ("Core", 5_000.0)] {
        let polls = (day * 0.1 / 3.0_f64).floor();
        let calls = polls * idle_calls + 1_000.0 * per_order_calls;
        let bytes = polls * idle_bytes + 1_000.0 * per_order_bytes;
        println!(
            "BENCH a day of 1,000 orders on {tier}: {polls} polls, {calls:.0} calls, {:.2} MB egress (webhook lookups: only people's changes)",
            bytes / 1e6
        );
    }
}

fn nzd(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.into(),
        currency: "NZD".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn bench_projection_keeps_up() {
    const ORDERS: u32 = 10_000;
    let mut stack = Stack::start(&[("RECON_INVOICE_SLA", "1h"), ("RECON_SETTLE_SLA", "1h")]).await;
    stack.stop_writer();
    stack.stop_recon();
    // Baseline: publishing the same messages to JetStream.
    let started = Instant::now();
    let mut sent = 0u64;
    for i in 0..ORDERS {
        let id = (100_000 + i).to_string();
        let o = order(&id, 1, OrderStatus::Confirmed, false);
        stack
            .publish(&event(&o, OrderEventType::Created, &format!("b{id}")))
            .await;
        let fact = XeroFact {
            fact_id: format!("f{id}"),
            tenant_id: stack.tenant.clone(),
            kind: XeroDocumentKind::Invoice as i32,
            verb: XeroVerb::Created as i32,
            xero_id: format!("00000000-0000-0000-0000-{:012}", 100_000 + i),
            number: format!("SO-{id}"),
            store: "main".into(),
            order_key: format!("main/{id}"),
            order_version: 1,
            total: nzd("115.00"),
            amount_due: nzd("115.00"),
            tax: nzd("15.00"),
            status: "AUTHORISED".into(),
            written_at: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        };
        let subject = subjects::xero(
            &stack.tenant,
            XeroDocumentKind::Invoice,
            XeroVerb::Created,
            &fact.order_key,
        );
        stack
            .publisher
            .publish_proto(subject, &fact.fact_id, &fact, Default::default())
            .await
            .unwrap();
        sent += 2;
    }
    let publish = started.elapsed();
    println!(
        "BENCH baseline: {sent} messages published to JetStream in {publish:?} ({:.0}/s)",
        sent as f64 / publish.as_secs_f64()
    );
    // The reconciler takes them in from its durable consumers.
    let started = Instant::now();
    stack.start_recon();
    assert!(
        eventually(Duration::from_secs(600), || async {
            stack.recon_caught_up().await
        })
        .await,
        "{}",
        stack.output()
    );
    let took = started.elapsed();
    let rss = stack.recon.peak_rss_kib().unwrap_or(0);
    println!(
        "BENCH projection: {sent} events in {took:?} from start ({:.0} events/s), peak RSS {:.1} MiB",
        sent as f64 / took.as_secs_f64(),
        rss as f64 / 1024.0
    );
    assert!(
        sent as f64 / took.as_secs_f64() >= 1_000.0,
        "the projection keeps up with 1,000 events/s"
    );
    assert!(rss <= 64 * 1024, "RSS {rss} KiB over 64 MiB");
}

/// A month of a busy shop: 30 days of 10,000 orders (two currencies, two payment accounts,
/// one order in fifty with Xero's tax rounding, ten unexplained), written as the projection
/// writes its rows; then the report made five times from NATS, as JSON, CSV, table and page.
/// Baseline in the same run: reading the same shards from KV without parsing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --run-ignored only"]
async fn bench_report_month() {
    use reconciler::report::row::{Cause, Measure, Row, Why};
    use reconciler::report::rows::{SHARDS, Shard, shard_key};
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    let days: u32 = std::env::var("BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let per_day: u32 = std::env::var("BENCH_ORDERS_PER_DAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let nats = tokio::task::spawn_blocking(ledgerline_testkit::NatsServer::start)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let spec = ledgerline_contract::buckets::RECON_REPORT;
    let rows_kv = js.create_key_value(spec.config(1)).await.unwrap();
    let state_kv = js
        .create_key_value(ledgerline_contract::buckets::RECON_STATE.config(1))
        .await
        .unwrap();
    let org = reconciler::report::org::Org {
        tenant: "t".into(),
        name: "Demo".into(),
        timezone: "Pacific/Auckland".into(),
        base_currency: "NZD".into(),
        read_at: "2026-12-01T00:00:00Z".into(),
    };
    state_kv
        .put("org.t", serde_json::to_vec(&org).unwrap().into())
        .await
        .unwrap();
    let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let started = Instant::now();
    let mut bytes = 0usize;
    for d in 0..days {
        let date = first + chrono::Duration::days(i64::from(d));
        let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
        for i in 0..per_day {
            let id = format!("{d}-{i}");
            let cents = 1_000 + i64::from(i % 9_000);
            let gross = Decimal::new(cents * 115 / 100, 2);
            let tax = Decimal::new(cents * 15 / 100, 2);
            let mut row = Row {
                rev: 1,
                n: format!("SO-{d:02}{i:05}"),
                at: format!("{date}T{:02}:{:02}:00Z", (i / 60) % 24, i % 60),
                cur: if i % 5 == 0 { "AUD" } else { "NZD" }.into(),
                gross,
                tax,
                paid: gross,
                xi: 1,
                xinv: gross,
                xtax: tax,
                xpaid: [(if i % 3 == 0 { "091" } else { "090" }.to_owned(), gross)].into(),
                ..Default::default()
            };
            if i % 5 == 0 {
                row.xrate = Some(Decimal::new(93, 2));
            }
            if i % 50 == 0 {
                row.xtax -= Decimal::new(1, 2);
                row.xrnd = Decimal::new(1, 2);
                row.why = vec![
                    Why {
                        m: Measure::Tax,
                        c: Cause::TaxRounding,
                        a: Decimal::new(1, 2),
                        f: String::new(),
                    },
                    Why {
                        m: Measure::Net,
                        c: Cause::RoundingLine,
                        a: Decimal::new(-1, 2),
                        f: String::new(),
                    },
                ];
            }
            if d == 3 && i < 10 {
                row.xinv += Decimal::new(1, 2);
                row.why = vec![Why {
                    m: Measure::Invoiced,
                    c: Cause::Unexplained,
                    a: Decimal::new(-1, 2),
                    f: "changed_in_xero".into(),
                }];
                row.open = vec!["changed_in_xero".into()];
            }
            shards
                .entry(shard_key("main", row.utc_date(), &id))
                .or_default()
                .insert(id, row);
        }
        assert!(shards.len() <= SHARDS as usize + 32);
        for (k, s) in shards {
            let v = serde_json::to_vec(&s).unwrap();
            bytes += v.len();
            rows_kv.put(k, v.into()).await.unwrap();
        }
    }
    println!(
        "BENCH rows: {} orders in {} shards, {:.1} MB of rows, written in {:?}",
        days * per_day,
        days * SHARDS,
        bytes as f64 / 1e6,
        started.elapsed()
    );
    // Auckland is UTC+13: the last UTC day's evening orders fall on the next local day.
    let to = first + chrono::Duration::days(i64::from(days));
    let q = reconciler::report::Query::new("main", first, to, None).unwrap();
    let mut raw = Vec::new();
    let mut made = Vec::new();
    let mut rendered = Vec::new();
    for _ in 0..5 {
        // Baseline: the same gets, no parsing.
        let t = Instant::now();
        let mut d = first.pred_opt().unwrap();
        let mut n = 0usize;
        while d <= to.succ_opt().unwrap() {
            let keys: Vec<String> = (0..SHARDS)
                .map(|s| format!("r.main.{}.{s:02}", d.format("%Y%m%d")))
                .collect();
            let got: Vec<_> = futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffered(
                futures::stream::iter(keys.into_iter().map(|k| {
                    let kv = rows_kv.clone();
                    async move { kv.get(k).await.unwrap() }
                })),
                64,
            ))
            .await;
            n += got.iter().flatten().map(|b| b.len()).sum::<usize>();
            d = d.succ_opt().unwrap();
        }
        raw.push(t.elapsed());
        assert!(n > 0);
        let t = Instant::now();
        let report = reconciler::report::make(&rows_kv, &state_kv, &q)
            .await
            .unwrap();
        made.push(t.elapsed());
        let t = Instant::now();
        let page = reconciler::report::page::render(&report, &Default::default()).into_string();
        let csv = reconciler::report::text::csv(&report);
        let mut table = Vec::new();
        reconciler::report::text::write_table(&mut table, &report).unwrap();
        let json = serde_json::to_vec(&report).unwrap();
        rendered.push(t.elapsed());
        assert_eq!(report.orders, u64::from(days * per_day));
        assert_eq!(report.unexplained.len(), if days > 3 { 10 } else { 0 });
        assert!(page.len() > 10_000 && !csv.is_empty() && !table.is_empty() && !json.is_empty());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (raw, made, rendered) = (median(&mut raw), median(&mut made), median(&mut rendered));
    println!(
        "BENCH report: a month of {} orders: made in {made:?} (median of 5: KV reads alone {raw:?}, so parsing and adding up {:?}); rendered as page, CSV, table and JSON in {rendered:?}; total {:?}",
        days * per_day,
        made.saturating_sub(raw),
        made + rendered
    );
    assert!(
        made + rendered < Duration::from_secs(2),
        "a month renders in under 2 s"
    );
}
