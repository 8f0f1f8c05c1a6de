//! The reconciliation report on the demo's whole pipeline: 300 orders (duplicates, reordering,
//! five currencies, refunds, cancellations, two orders held for review) tie out to the cent,
//! every difference explained, and Xero's payments per account are what the sandbox holds.

use ledgerline_demo::{Options, Stack};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
        .parse()
        .unwrap_or_else(|e| panic!("{v} is not a decimal: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_orders_tie_out_with_every_difference_explained() {
    let mut opts = Options::small(300).at_time_scale(20);
    opts.review_orders = 1;
    opts.timeout_secs = 600;
    let stack = Stack::start(&opts).await.unwrap();
    assert!(stack.missing.is_empty(), "not built: {:?}", stack.missing);
    let truth = stack.send_orders(&opts).await.unwrap();
    let tie = stack
        .wait_converged(&truth, Duration::from_secs(opts.timeout_secs), |p| {
            eprintln!("{p}")
        })
        .await
        .unwrap();
    assert!(tie.ok(), "{tie}");
    let held = stack.in_review().await.unwrap();
    assert!(!held.is_empty(), "the review orders wait for a person");

    // Causes left once everything is written: none "in flight" (which would hide a wrong
    // figure until the settle SLA passed) and none a finding.
    let causes = |r: &ledgerline_demo::Reconciliation| -> std::collections::BTreeSet<String> {
        r.currencies
            .iter()
            .flat_map(|l| &l.explained)
            .map(|e| e["cause"].as_str().unwrap().to_owned())
            .collect()
    };
    let settled = ["fx", "in_review", "rounding_line", "tax_rounding"];
    // The reconciler's rows follow the same streams: poll until they tie out too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let r = stack.reconciliation(&truth).await.unwrap();
        let done = causes(&r).iter().all(|c| settled.contains(&c.as_str()));
        if r.ties_out && done && r.held.len() >= held.len()
            || tokio::time::Instant::now() > deadline
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("{report}");
    assert!(report.ties_out, "{report}\n{:#?}", report.unexplained);
    let left = causes(&report);
    assert!(
        left.iter().all(|c| settled.contains(&c.as_str())),
        "{left:?}: {:#?}",
        report
            .currencies
            .iter()
            .map(|l| &l.explained)
            .collect::<Vec<_>>()
    );
    // An order held before it was normalised has no figures yet: it is listed as held, not
    // counted in a currency.
    let unknown = report
        .held
        .iter()
        .filter(|h| h["figures_known"] == false)
        .count();
    assert_eq!(
        report.orders as usize + unknown,
        truth.orders.len(),
        "{:#?} {held:?}",
        report.held
    );
    assert_eq!(report.timezone, "Pacific/Auckland");
    let held_numbers: std::collections::BTreeSet<String> = report
        .held
        .iter()
        .map(|h| h["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held_numbers, held, "{:#?}", report.held);
    let currencies: Vec<&str> = report
        .currencies
        .iter()
        .map(|l| l.currency.as_str())
        .collect();
    let want: Vec<&str> = truth.per_currency.keys().map(String::as_str).collect();
    assert_eq!(currencies, want);
    for l in &report.currencies {
        assert_eq!(l.unexplained, Decimal::ZERO, "{} unexplained", l.currency);
    }

    // Payments per account and currency: what Xero (the sandbox) holds, summed here.
    let docs: Value = stack
        .http()
        .get(format!(
            "{}/admin/tenants/{}/documents",
            stack.sandbox.base_url(),
            stack.tenant()
        ))
        .bearer_auth("sandbox-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let currency_of: BTreeMap<&str, &str> = docs["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["InvoiceID"].as_str().unwrap(),
                i["CurrencyCode"].as_str().unwrap(),
            )
        })
        .collect();
    let credit_currency: BTreeMap<&str, &str> = docs["CreditNotes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["CreditNoteID"].as_str().unwrap(),
                c["CurrencyCode"].as_str().unwrap(),
            )
        })
        .collect();
    // (currency, account) → amount, for payments received and for refunds paid out.
    let mut received: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    let mut refunds: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for p in docs["Payments"].as_array().unwrap() {
        if p["Status"] == "DELETED" {
            continue;
        }
        let account = p["Account"]["Code"].as_str().unwrap().to_owned();
        let (currency, into) = match p["PaymentType"].as_str().unwrap() {
            "ACCRECPAYMENT" => (
                currency_of[p["Invoice"]["InvoiceID"].as_str().unwrap()],
                &mut received,
            ),
            "ARCREDITPAYMENT" => (
                credit_currency[p["CreditNote"]["CreditNoteID"].as_str().unwrap()],
                &mut refunds,
            ),
            other => panic!("the writer made a {other} payment"),
        };
        *into.entry((currency.to_owned(), account)).or_default() += dec(&p["Amount"]);
    }
    let per_account =
        |pick: fn(&ledgerline_demo::ReconciliationXero) -> &BTreeMap<String, Decimal>| {
            report
                .currencies
                .iter()
                .flat_map(|l| {
                    pick(&l.xero)
                        .iter()
                        .map(|(account, amount)| ((l.currency.clone(), account.clone()), *amount))
                })
                .filter(|(_, a)| !a.is_zero())
                .collect::<BTreeMap<_, _>>()
        };
    assert!(!received.is_empty() && !refunds.is_empty());
    assert_eq!(per_account(|x| &x.payments), received, "payments received");
    assert_eq!(per_account(|x| &x.refunds), refunds, "refunds paid out");
}
