//! The reconciliation report against the real writer and xero-sandbox: days in the
//! organisation's timezone (an order at 23:30 in Auckland is on that day, one at 00:30 on the
//! next), Xero's per-line tax rounding and the writer's rounding line explained, payments per
//! account equal to Xero's; then a cent changed on an invoice directly in Xero is unexplained,
//! names its order and its finding, in the JSON, the CLI (table, JSON, CSV, exit code) and the
//! page in a real Chromium (screenshot in target/test-artifacts/).

use crate::helpers::*;
use fantoccini::Locator;
use ledgerline_contract::v1::{LineItem, Money, OrderEventType, OrderStatus, Totals};
use ledgerline_testkit::browser::Browser;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

fn nzd(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.into(),
        currency: "NZD".into(),
    })
}

/// Two lines of 10.03 at 15 %: the store taxes the order once (3.009 → 3.01), Xero each line
/// (1.5045 → 1.50, twice): 3.00, and the writer adds a 0.01 rounding line.
fn rounding_order(id: &str, created_at: &str) -> ledgerline_contract::v1::Order {
    let mut o = order(id, 1, OrderStatus::Paid, true);
    let line = LineItem {
        unit_price: nzd("10.03"),
        line_total: nzd("10.03"),
        tax_amount: nzd("1.50"),
        ..o.lines[0].clone()
    };
    o.lines = vec![
        line.clone(),
        LineItem {
            sku: "W-2".into(),
            ..line
        },
    ];
    o.totals = Some(Totals {
        subtotal: nzd("20.06"),
        tax: nzd("3.01"),
        total: nzd("23.07"),
        ..Default::default()
    });
    o.payments[0].amount = nzd("23.07");
    o.amount_paid = nzd("23.07");
    o.created_at = created_at.into();
    o
}

async fn report(stack: &Stack, query: &str) -> (u16, Value) {
    let r = stack
        .http
        .get(format!("http://{}/report?{query}", stack.recon_addr()))
        .bearer_auth(API)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asks for the report until `done` says yes (or `WAIT` passes); the last answer either way.
async fn report_until(
    stack: &Stack,
    query: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> (bool, Value) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (s, r) = report(stack, query).await;
        if done(s, &r) {
            return (true, r);
        }
        if std::time::Instant::now() > deadline {
            return (false, r);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const RANGE: &str = "store=main&from=2026-11-30&to=2026-12-03";

fn day<'a>(r: &'a Value, day: &str) -> Option<&'a Value> {
    r["days"]
        .as_array()?
        .iter()
        .find(|l| l["day"] == day && l["currency"] == "NZD")
}

fn settled(r: &Value) -> bool {
    r["orders"] == 3
        && r["days"].as_array().is_some_and(|d| {
            d.iter().all(|l| {
                l["explained"].as_array().is_some_and(|e| {
                    e.iter()
                        .all(|x| x["cause"] != "in_flight" && x["cause"] != "finding")
                })
            })
        })
}

/// Fills the sign-in form with the API token and submits it.
async fn sign_in(c: &fantoccini::Client) {
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(API)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_explains_every_cent_and_names_one_changed_in_xero() {
    let stack = Stack::start(&[]).await;
    // 23:30 on 1 December in Auckland (UTC+13); 00:30 on 2 December (still 1 December in
    // UTC); the rounding order in the afternoon of 2 December.
    // Unpaid: Xero refuses to edit a paid invoice, and a person changes this one below.
    let mut late = order("5001", 1, OrderStatus::Confirmed, false);
    late.created_at = "2026-12-01T10:30:00Z".into();
    let mut early = order("5002", 1, OrderStatus::Paid, true);
    early.created_at = "2026-12-01T11:30:00Z".into();
    let rounding = rounding_order("5003", "2026-12-02T01:00:00Z");
    for o in [&late, &early, &rounding] {
        stack
            .publish(&event(o, OrderEventType::Created, &format!("e{}", o.id)))
            .await;
    }
    let (ok, r) = report_until(&stack, RANGE, |s, r| s == 200 && settled(r)).await;
    assert!(ok, "{r:#}\n{}", stack.output());
    assert_eq!(r["timezone"], "Pacific/Auckland", "{r:#}");
    assert_eq!(r["base_currency"], "NZD");
    assert_eq!(r["ties_out"], true, "{r:#}");
    assert!(r["unexplained"].as_array().unwrap().is_empty());
    // The day boundary is Auckland's, not UTC's.
    let first = day(&r, "2026-12-01").expect("1 December");
    assert_eq!(first["orders"], 1, "{r:#}");
    assert_eq!(dec(&first["gross"]), Decimal::new(11500, 2));
    let second = day(&r, "2026-12-02").expect("2 December");
    assert_eq!(second["orders"], 2, "{r:#}");
    // Per-line tax rounding and the rounding line, named with their order, offset each other.
    let explained: Vec<(String, String, Decimal, Vec<Value>)> = second["explained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["measure"].as_str().unwrap().to_owned(),
                e["cause"].as_str().unwrap().to_owned(),
                dec(&e["amount"]),
                e["sample"].as_array().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(
        explained,
        vec![
            (
                "net".into(),
                "rounding_line".into(),
                Decimal::new(-1, 2),
                vec![json!("SO-5003")]
            ),
            (
                "tax".into(),
                "tax_rounding".into(),
                Decimal::new(1, 2),
                vec![json!("SO-5003")]
            ),
        ],
        "{second:#}"
    );
    assert_eq!(dec(&second["xero"]["rounding"]), Decimal::new(1, 2));
    // Payments per account: what Xero itself holds.
    let payments = stack
        .as_accountant(Method::GET, "/Payments", json!({}))
        .await;
    let mut xero: BTreeMap<String, Decimal> = BTreeMap::new();
    for p in payments["Payments"].as_array().unwrap() {
        if p["Status"] != "DELETED" {
            let amount: Decimal = p["Amount"].to_string().trim_matches('"').parse().unwrap();
            *xero
                .entry(p["Account"]["Code"].as_str().unwrap().to_owned())
                .or_default() += amount;
        }
    }
    let total = &r["currencies"][0];
    let ours: BTreeMap<String, Decimal> = total["xero"]["payments"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), dec(v)))
        .collect();
    assert_eq!(ours, xero, "{total:#}");
    assert_eq!(dec(&total["xero"]["paid"]), Decimal::new(13807, 2));

    // A person changes SO-5001 in Xero: its line 100.00 → 100.01, the total 115.00 → 115.01.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let inv = stack.invoice("SO-5001").await.unwrap();
    let id = inv["InvoiceID"].as_str().unwrap().to_owned();
    let mut lines = inv["LineItems"].as_array().unwrap().clone();
    lines[0]["UnitAmount"] = json!(100.01);
    lines[0].as_object_mut().unwrap().remove("LineAmount");
    lines[0].as_object_mut().unwrap().remove("TaxAmount");
    stack
        .as_accountant(
            Method::POST,
            &format!("/Invoices/{id}"),
            json!({ "Invoices": [{ "InvoiceID": id, "LineItems": lines }] }),
        )
        .await;
    let (ok, r) = report_until(&stack, RANGE, |_, r| {
        r["unexplained"].as_array().is_some_and(|u| {
            u.iter()
                .any(|x| x["number"] == "SO-5001" && x["measure"] == "invoiced")
        })
    })
    .await;
    assert!(ok, "{r:#}\n{}", stack.output());
    assert_eq!(r["ties_out"], false);
    let u = r["unexplained"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["measure"] == "invoiced")
        .unwrap();
    assert_eq!(dec(&u["amount"]), Decimal::new(-1, 2), "{r:#}");
    assert_eq!(u["day"], "2026-12-01");
    let finding = u["finding"].as_str().unwrap().to_owned();
    assert!(
        ["changed_in_xero", "total_differs"].contains(&finding.as_str()),
        "{u}"
    );
    assert_eq!(
        dec(&day(&r, "2026-12-01").unwrap()["unexplained"]),
        Decimal::new(-1, 2)
    );
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["number"] == "SO-5001" && f["kind"] == finding),
        "{r:#}"
    );
    // The finding itself is on RECON.
    assert!(
        stack
            .recon_events()
            .await
            .iter()
            .any(|f| f.order_id == "5001" && f.kind == finding && f.open)
    );

    // The CLI says the same: a table for people, JSON and CSV for scripts, exit code 3.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(workspace("reconciler"))
            .args([
                "report",
                "--store",
                "main",
                "--from",
                "2026-11-30",
                "--to",
                "2026-12-03",
            ])
            .args(args)
            .env("NATS_URL", stack.nats.url())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !stdout.is_empty(),
            "reconciler report {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), stdout)
    };
    let (code, table) = cli(&[]);
    assert_eq!(code, Some(3), "{table}");
    assert!(table.contains("NOT TIED OUT"), "{table}");
    assert!(table.contains("SO-5001"), "{table}");
    assert!(
        table.contains("Payments received in Xero, per payment account"),
        "{table}"
    );
    let (_, json_out) = cli(&["--json"]);
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(parsed["unexplained"], r["unexplained"]);
    let (_, csv) = cli(&["--csv"]);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("unexplained,2026-12-01,NZD,invoiced,")
                && l.contains("SO-5001,-0.01")),
        "{csv}"
    );

    // HTTP answers: no token, a bad date, CSV.
    let url = format!("http://{}/report?{RANGE}", stack.recon_addr());
    let r = stack.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, body) = report(&stack, "store=main&from=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    let (status, _) = report(&stack, "store=main&from=2026-12-03&to=2026-12-01").await;
    assert_eq!(status, 400);
    let r = stack
        .http
        .get(format!("{url}&format=csv"))
        .bearer_auth(API)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );

    // The page in a real browser. A link from the operator page to the reconciler's view of
    // an order asks for the token first, then shows the order.
    let b = Browser::start().await;
    let c = &b.client;
    let view = format!("http://{}/v1/orders/main/5001", stack.recon_addr());
    c.goto(&view).await.unwrap();
    let here = c.current_url().await.unwrap();
    assert!(here.path().ends_with("/report/login"), "{here}");
    assert!(
        here.as_str().contains("next=%2Fv1%2Forders%2Fmain%2F5001"),
        "{here}"
    );
    sign_in(c).await;
    // Chromium shows JSON in a <pre>.
    let body = c
        .wait()
        .for_element(Locator::Css("pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().as_str(), view);
    assert!(
        body.contains("SO-5001") && body.contains("changed_in_xero"),
        "{body}"
    );
    c.delete_all_cookies().await.unwrap();
    // The report: sign in with the token, read the verdict and the chart.
    c.goto(&format!("{url}&format=html")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/report/login")
    );
    sign_in(c).await;
    let status = c.wait().for_element(Locator::Css("#status")).await.unwrap();
    let said = status.text().await.unwrap();
    assert!(said.contains("Not tied out"), "{said}");
    let bars = c.find_all(Locator::Css("figure.chart rect")).await.unwrap();
    assert_eq!(bars.len(), 8, "the range's four days, two bars each");
    assert_eq!(
        c.find_all(Locator::Css("figure.chart path.mark-bad"))
            .await
            .unwrap()
            .len(),
        1,
        "the day with the unexplained cent is marked"
    );
    let row = c
        .find(Locator::Css("#unexplained + table tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("SO-5001") && row.contains("-0.01"), "{row}");
    let shot = b.screenshot("reconciliation-report").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    b.close().await;
}
