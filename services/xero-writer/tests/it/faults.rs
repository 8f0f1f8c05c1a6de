use crate::helpers::*;
use ledgerline_contract::v1::{OrderEventType, OrderStatus, ReasonClass};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn paid(number: &str, email: &str) -> ledgerline_contract::v1::OrderEvent {
    let mut o = simple(number, email);
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, &format!("pay-{number}"), total);
    event(&o, OrderEventType::Paid, &format!("ev-{number}"))
}

fn all_paid(d: &serde_json::Value, n: usize) -> bool {
    let inv = invoices(d);
    inv.len() == n && inv.iter().all(|i| i["Status"] == "PAID")
}

#[tokio::test]
async fn a_429_storm_delays_but_everything_lands_and_nothing_is_dead_lettered() {
    let stack = Stack::start(&[]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"force_429": 4, "force_429_problem": "minute"}))
        .await;
    for i in 0..10 {
        stack
            .publish(&paid(&format!("SO-2{i:03}"), &format!("c{i}@example.com")))
            .await;
    }
    let docs = stack.wait_docs("10 paid", T, |d| all_paid(d, 10)).await;
    assert_eq!(docs["Payments"].as_array().unwrap().len(), 10);
    let counters = stack.sandbox.counters().await;
    assert!(counters["throttled"].as_u64().unwrap() >= 4, "{counters}");
    assert!(stack.dead_letters().await.is_empty());
    assert!(
        stack
            .metrics()
            .await
            .contains("xero_client_throttled_total")
    );
}

#[tokio::test]
async fn an_outage_opens_the_breaker_and_recovery_loses_nothing() {
    let stack = Stack::start(&["--breaker-threshold", "3", "--breaker-cooldown", "300ms"]).await;
    // The writer has read the org's settings once it wrote the first order.
    stack.publish(&paid("SO-3000", "first@example.com")).await;
    stack.wait_docs("first", T, |d| all_paid(d, 1)).await;
    stack
        .sandbox
        .settings(serde_json::json!({"outage_secs": 3.0}))
        .await;
    for i in 1..8 {
        stack
            .publish(&paid(&format!("SO-3{i:03}"), &format!("o{i}@example.com")))
            .await;
    }
    let docs = stack
        .wait_docs("8 paid after the outage", T, |d| all_paid(d, 8))
        .await;
    assert_eq!(docs["Payments"].as_array().unwrap().len(), 8);
    assert!(stack.dead_letters().await.is_empty());
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("xero_client_breaker_transitions_total")
            && metrics.contains("to=\"open\""),
        "{metrics}"
    );
    assert!(stack.output().contains("Circuit breaker open"));
    assert!(stack.output().contains("Circuit breaker closed"));
}

#[tokio::test]
async fn a_partially_failing_batch_writes_the_good_and_reviews_the_bad() {
    let mut stack = Stack::start(&[]).await;
    // Everything is waiting when the writer starts, so the five go in one batch.
    stack.writer.as_mut().unwrap().kill();
    stack
        .sandbox
        .admin_post(
            &format!("/tenants/{}/period-lock", stack.sandbox.tenant),
            serde_json::json!({"date": "2026-11-22"}),
        )
        .await;
    for i in 0..5 {
        let mut o = simple(&format!("SO-4{i:03}"), &format!("p{i}@example.com"));
        // One order is dated inside the locked period: Xero refuses that element only.
        o.created_at = if i == 2 {
            "2026-11-20T10:00:00+13:00"
        } else {
            "2026-11-24T10:00:00+13:00"
        }
        .into();
        stack
            .publish(&event(&o, OrderEventType::Created, &format!("pb{i}")))
            .await;
    }
    stack.start_writer();
    stack
        .wait_docs("4 invoices", T, |d| invoices(d).len() == 4)
        .await;
    let deadline = tokio::time::Instant::now() + T;
    let dls = loop {
        let dls = stack.dead_letters().await;
        if !dls.is_empty() || tokio::time::Instant::now() > deadline {
            break dls;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0].reason_class, ReasonClass::XeroValidation as i32);
    assert!(dls[0].error.contains("lock date"), "{}", dls[0].error);
    assert!(invoice(&stack.sandbox.documents().await, "SO-4002").is_none());
    let puts = stack
        .sandbox
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "PUT" && r["endpoint"] == "/invoices")
        .count();
    assert_eq!(puts, 1, "one request for the five invoices");
}

#[tokio::test]
async fn a_writer_killed_mid_run_loses_nothing_and_duplicates_nothing() {
    let mut stack = Stack::start(&["--batch-size", "10"]).await;
    stack
        .sandbox
        .settings(serde_json::json!({"latency_ms": 40}))
        .await;
    let n = 40;
    for i in 0..n {
        stack
            .publish(&paid(
                &format!("SO-5{i:03}"),
                &format!("k{}@example.com", i % 25),
            ))
            .await;
    }
    stack
        .wait_docs("some progress", T, |d| !invoices(d).is_empty())
        .await;
    stack.writer.as_mut().unwrap().kill();
    stack.start_writer();
    let docs = stack
        .wait_docs("all paid after restart", T, |d| all_paid(d, n))
        .await;
    assert_eq!(docs["Payments"].as_array().unwrap().len(), n);
    let contacts = docs["Contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 25, "one contact per customer");
    let mut numbers: Vec<String> = invoices(&docs)
        .iter()
        .map(|i| i["InvoiceNumber"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), n);
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_disconnected_tenant_pauses_alone_and_resumes_after_reconnecting() {
    let sandbox = Sandbox::start_tenants(2).await;
    let (a, b) = (sandbox.tenants[0].clone(), sandbox.tenants[1].clone());
    let mut stack = Stack::start_with(
        sandbox,
        &["--breaker-threshold", "2", "--breaker-cooldown", "300ms"],
    )
    .await;
    // Two tenants: A gets store main, B gets store outlet.
    stack.writer.as_mut().unwrap().kill();
    stack.args[1] = format!("{a}=main");
    stack
        .args
        .extend(["--tenant".to_owned(), format!("{b}=outlet")]);
    stack.start_writer();
    let outlet = |number: &str| {
        let mut o = simple(number, &format!("{number}@example.com"));
        o.store = "outlet".into();
        event(&o, OrderEventType::Created, &format!("ev-{number}"))
    };
    stack.publish(&outlet("OUT-1")).await;
    let deadline = tokio::time::Instant::now() + T;
    while invoice(&stack.sandbox.documents_of(&b).await, "OUT-1").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "{}", stack.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.sandbox.disconnect(&b).await;
    for i in 2..6 {
        stack.publish(&outlet(&format!("OUT-{i}"))).await;
    }
    // Tenant A goes on while B is disconnected.
    stack.publish(&paid("SO-9100", "a@example.com")).await;
    stack
        .wait_docs("tenant A unaffected", T, |d| all_paid(d, 1))
        .await;
    let deadline = tokio::time::Instant::now() + T;
    while !stack.output().contains("Xero refused this connection") {
        assert!(tokio::time::Instant::now() < deadline, "{}", stack.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(invoice(&stack.sandbox.documents_of(&b).await, "OUT-2").is_none());
    stack
        .sandbox
        .admin_post(&format!("/tenants/{b}/reconnect"), serde_json::json!({}))
        .await;
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let docs = stack.sandbox.documents_of(&b).await;
        if invoices(&docs).len() == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", stack.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stack.dead_letters().await.is_empty(),
        "no dead letter per order"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_without_losing_work() {
    let stack = Stack::start(&[]).await;
    stack.publish(&paid("SO-9500", "t1@example.com")).await;
    stack.wait_docs("first", T, |d| all_paid(d, 1)).await;
    // Every token Xero issued is now expired: the next call gets 401 TokenExpired.
    stack
        .sandbox
        .admin_post("/tokens/expire", serde_json::json!({}))
        .await;
    stack.publish(&paid("SO-9501", "t2@example.com")).await;
    stack.wait_docs("second", T, |d| all_paid(d, 2)).await;
    assert!(stack.dead_letters().await.is_empty());
    // The refreshed token is in the XERO_TOKENS bucket for other replicas.
    let kv = stack.js.get_key_value("xero_tokens").await.unwrap();
    // `cc.<tenant>.<scope set>`: a token per scope set.
    use futures::TryStreamExt;
    let keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
    let prefix = format!("cc.{}.", stack.sandbox.tenant);
    let key = keys
        .iter()
        .find(|k| k.starts_with(&prefix))
        .unwrap_or_else(|| panic!("a token stored under {prefix}*: {keys:?}"));
    let entry = kv.entry(key).await.unwrap().expect("token stored");
    assert!(entry.revision >= 2, "refreshed by compare-and-set");
}
