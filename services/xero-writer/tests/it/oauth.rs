//! `XERO_GRANT_TYPE=authorization_code`: the `connect` consent, refreshes shared by replicas, and
//! a revoked grant pausing the tenant until it is connected again.

use crate::helpers::*;
use clap::Parser;
use ledgerline_contract::v1::{
    OrderEventType, OrderStatus, XeroConnectionEvent, XeroConnectionState,
};
use ledgerline_contract::{Schema, subjects};
use ledgerline_testkit::ServiceProcess;
use ledgerline_xero_client::oauth::TokenSet;
use prost::Message as _;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Waits (bounded) for a connection event on `subject`.
async fn wait_connection_event(stack: &Stack, subject: &str) {
    let deadline = tokio::time::Instant::now() + T;
    while !connection_events(stack)
        .await
        .iter()
        .any(|(s, _)| s == subject)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {subject} event; writer output:\n{}",
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
const AC: [&str; 2] = ["--xero-grant-type", "authorization_code"];

/// Runs `xero-writer connect` in-process; a client standing in for the browser follows the
/// authorize URL (the sandbox consents at once and redirects to the command's listener).
async fn connect(stack: &Stack) -> xero_writer::connect::Connected {
    let api = format!("{}/api.xro/2.0", stack.sandbox.base);
    let nats = stack.nats.url();
    let cli = xero_writer::Cli::parse_from([
        "xero-writer",
        "--nats-url",
        &nats,
        "--xero-grant-type",
        "authorization_code",
        "--xero-identity-url",
        &stack.sandbox.base,
        "--xero-api-url",
        &api,
        "connect",
        "--redirect-listen",
        "127.0.0.1:0",
    ]);
    let config = xero_writer::Config::from_cli(&cli).unwrap();
    let Some(xero_writer::Command::Connect(args)) = cli.command else {
        unreachable!("parsed a connect command");
    };
    let pending = xero_writer::connect::prepare(&config, &args).await.unwrap();
    let url = pending.authorize_url().to_owned();
    assert!(
        url.contains("response_type=code") && url.contains("state="),
        "{url}"
    );
    let browser = async move {
        let r = reqwest::get(url).await.expect("authorize and redirect");
        (r.status(), r.text().await.unwrap_or_default())
    };
    let (done, (status, page)) = tokio::join!(pending.finish(&config), browser);
    assert!(status.is_success(), "{status}: {page}");
    done.expect("connect stores a token set")
}

async fn stored(stack: &Stack) -> TokenSet {
    let kv = stack.js.get_key_value("xero_tokens").await.unwrap();
    let key = ledgerline_xero_client::oauth::key(&stack.sandbox.tenant);
    let v = kv.get(&key).await.unwrap().expect("token set stored");
    serde_json::from_slice(&v).unwrap()
}

fn grants(counters: &Value, grant: &str) -> u64 {
    counters["token_grants"][grant].as_u64().unwrap_or(0)
}

/// Connection events on `xero.<tenant>.connection.*`.
async fn connection_events(stack: &Stack) -> Vec<(String, XeroConnectionEvent)> {
    let mut stream = stack.js.get_stream("XERO").await.unwrap();
    let info = stream.info().await.unwrap().state.clone();
    let prefix = format!("xero.{}.connection.", stack.sandbox.tenant);
    let mut out = Vec::new();
    for seq in info.first_sequence..=info.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await
            && m.subject.starts_with(&prefix)
        {
            let schema = m
                .headers
                .get(ledgerline_contract::headers::SCHEMA)
                .map(|v| v.as_str().to_owned());
            assert_eq!(schema.as_deref(), Some(XeroConnectionEvent::NAME));
            out.push((
                m.subject.to_string(),
                XeroConnectionEvent::decode(m.payload.as_ref()).unwrap(),
            ));
        }
    }
    out
}

fn paid(number: &str, email: &str) -> ledgerline_contract::v1::OrderEvent {
    let mut o = simple(number, email);
    o.version = 2;
    o.status = OrderStatus::Paid as i32;
    let total = total_of(&o);
    pay(&mut o, &format!("pay-{number}"), total);
    event(&o, OrderEventType::Paid, &format!("ev-{number}"))
}

#[tokio::test]
async fn connect_stores_a_token_set_and_the_writer_posts_with_it() {
    let stack = Stack::start(&AC).await;
    // Waiting before the consent: the tenant is paused, its events wait.
    stack
        .publish(&event(
            &simple("SO-9000", "oauth@example.com"),
            OrderEventType::Created,
            "oa-1",
        ))
        .await;
    let done = connect(&stack).await;
    assert_eq!(done.tenant, stack.sandbox.tenant);
    let set = stored(&stack).await;
    assert!(
        !set.refresh_token.is_empty() && set.revoked.is_none(),
        "{set:?}"
    );
    assert!(set.scope.contains("offline_access"), "{set:?}");
    stack
        .wait_docs("the invoice written with authorization_code", T, |d| {
            invoice(d, "SO-9000").is_some()
        })
        .await;
    let counters = stack.sandbox.counters().await;
    assert_eq!(grants(&counters, "authorization_code"), 1, "{counters}");
    assert_eq!(grants(&counters, "client_credentials"), 0, "{counters}");
    assert!(stack.dead_letters().await.is_empty());
    // No token reaches the log.
    let output = stack.output();
    assert!(!output.contains(&set.refresh_token) && !output.contains(&set.access_token));
}

#[tokio::test]
async fn an_idle_tenant_refreshes_before_expiry() {
    let sandbox = Sandbox::start().await;
    sandbox
        .settings(serde_json::json!({"access_token_secs": 3}))
        .await;
    let stack = Stack::start_with(sandbox, &AC).await;
    connect(&stack).await;
    // No orders: only the watcher refreshes, each time shortly before the token expires.
    let deadline = tokio::time::Instant::now() + T;
    while grants(&stack.sandbox.counters().await, "refresh_token") < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}\n{}",
            stack.sandbox.counters().await,
            stack.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = stack.sandbox.counters().await;
    assert_eq!(counters["refresh_reuses"], 0, "{counters}");
    // Never a 401: each refresh came before the token expired.
    assert!(counters["statuses"].get("401").is_none(), "{counters}");
    assert!(stored(&stack).await.fresh());
}

#[tokio::test]
async fn two_writers_share_each_refresh_and_keep_writing() {
    let sandbox = Sandbox::start().await;
    // Access tokens live 3 s: the writers refresh every second or two.
    sandbox
        .settings(serde_json::json!({"access_token_secs": 3, "minute_limit": 600}))
        .await;
    let mut stack = Stack::start_with(
        sandbox,
        &[AC[0], AC[1], "--minute-limit", "600", "--batch-size", "2"],
    )
    .await;
    let args: Vec<&str> = stack.args.iter().map(String::as_str).collect();
    let url = stack.nats.url();
    let mut second = ServiceProcess::start(binary(), &args, &[("NATS_URL", &url)]);
    connect(&stack).await;
    // Orders keep coming (two at a time, for both replicas to pull) until several tokens expired.
    let mut n = 0;
    while grants(&stack.sandbox.counters().await, "refresh_token") < 4 {
        assert!(
            n < 200,
            "too few refreshes: {}",
            stack.sandbox.counters().await
        );
        for _ in 0..2 {
            stack
                .publish(&paid(
                    &format!("SO-9{n:03}"),
                    &format!("r{}@example.com", n % 5),
                ))
                .await;
            n += 1;
        }
        let want = n;
        stack
            .wait_docs("orders so far", T, |d| all_paid(d, want))
            .await;
    }
    let counters = stack.sandbox.counters().await;
    // Every rotated refresh token was presented exactly once: one refresh per expiry.
    assert_eq!(counters["refresh_reuses"], 0, "{counters}");
    assert_eq!(grants(&counters, "authorization_code"), 1, "{counters}");
    let docs = stack.sandbox.documents().await;
    assert_eq!(invoices(&docs).len(), n);
    assert_eq!(docs["Payments"].as_array().unwrap().len(), n);
    assert!(stack.dead_letters().await.is_empty());
    // Neither writer lost its authorisation once connected.
    for output in [stack.output(), second.output()] {
        let after = output
            .split("the tenant resumes")
            .nth(1)
            .unwrap_or_default();
        assert!(!after.contains("No usable Xero authorisation"), "{output}");
    }
    eprintln!(
        "{n} orders, {counters}; refreshes by the first writer: {}, by the second: {}",
        stack.output().matches("Xero token refreshed").count(),
        second.output().matches("Xero token refreshed").count()
    );
    assert!(second.is_running());
    second.kill();
    stack.writer.as_mut().unwrap().kill();
}

fn all_paid(d: &Value, n: usize) -> bool {
    let inv = invoices(d);
    inv.len() == n && inv.iter().all(|i| i["Status"] == "PAID")
}

#[tokio::test]
async fn a_revoked_grant_pauses_the_tenant_with_one_alert_until_connect_again() {
    let stack = Stack::start(&AC).await;
    connect(&stack).await;
    stack.publish(&paid("SO-9500", "before@example.com")).await;
    stack
        .wait_docs("written before the revocation", T, |d| all_paid(d, 1))
        .await;
    // The org's admin revokes the grant; the access token in hand expires too.
    let set = stored(&stack).await;
    let r = ledgerline_platform::tls::http_client("test")
        .unwrap()
        .post(format!("{}/connect/revocation", stack.sandbox.base))
        .basic_auth("ledgerline-sandbox", Some("sandbox-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", set.refresh_token))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    stack
        .sandbox
        .admin_post("/tokens/expire", Value::Null)
        .await;
    for i in 1..=5 {
        stack
            .publish(&paid(&format!("SO-95{i:02}"), &format!("w{i}@example.com")))
            .await;
    }
    let lost = subjects::xero_connection(&stack.sandbox.tenant, XeroConnectionState::Disconnected);
    wait_connection_event(&stack, &lost).await;
    let metrics = stack.metrics().await;
    let gauge = format!(
        "xero_client_tenant_connected{{tenant=\"{}\"}} 0",
        stack.sandbox.tenant
    );
    assert!(metrics.contains(&gauge), "{metrics}");
    assert!(
        stack
            .output()
            .contains("No usable Xero authorisation for this tenant")
    );
    assert!(stored(&stack).await.revoked.is_some());
    // Paused: the waiting orders are not written (nor dead-lettered).
    let docs = stack.sandbox.documents().await;
    assert_eq!(invoices(&docs).len(), 1, "{}", docs["Invoices"]);
    assert!(stack.dead_letters().await.is_empty());

    connect(&stack).await;
    let docs = stack
        .wait_docs("the waiting orders after reconnecting", T, |d| {
            all_paid(d, 6)
        })
        .await;
    for i in 1..=5 {
        let number = format!("SO-95{i:02}");
        let count = invoices(&docs)
            .iter()
            .filter(|inv| inv["InvoiceNumber"] == number.as_str())
            .count();
        assert_eq!(count, 1, "{number}");
    }
    assert_eq!(docs["Payments"].as_array().unwrap().len(), 6);
    assert!(stack.dead_letters().await.is_empty());
    let events = connection_events(&stack).await;
    let lost_events: Vec<_> = events.iter().filter(|(s, _)| *s == lost).collect();
    assert_eq!(lost_events.len(), 1, "{events:?}");
    assert_eq!(lost_events[0].1.tenant_id, stack.sandbox.tenant);
    assert!(
        lost_events[0].1.reason.contains("invalid_grant"),
        "{events:?}"
    );
    let restored = subjects::xero_connection(&stack.sandbox.tenant, XeroConnectionState::Connected);
    wait_connection_event(&stack, &restored).await;
    let gauge_up = format!(
        "xero_client_tenant_connected{{tenant=\"{}\"}} 1",
        stack.sandbox.tenant
    );
    assert!(stack.metrics().await.contains(&gauge_up));
}

#[tokio::test]
async fn a_disconnected_organisation_pauses_the_tenant_until_connect_again() {
    let stack = Stack::start(&AC).await;
    connect(&stack).await;
    stack.publish(&paid("SO-9600", "first@example.com")).await;
    stack
        .wait_docs("written before the disconnect", T, |d| all_paid(d, 1))
        .await;
    // The org's admin disconnects the app: the tokens refresh, but the API answers 403.
    stack.sandbox.disconnect(&stack.sandbox.tenant).await;
    for i in 1..=3 {
        stack
            .publish(&paid(&format!("SO-96{i:02}"), &format!("d{i}@example.com")))
            .await;
    }
    let lost = subjects::xero_connection(&stack.sandbox.tenant, XeroConnectionState::Disconnected);
    wait_connection_event(&stack, &lost).await;
    assert!(stack.dead_letters().await.is_empty());
    connect(&stack).await;
    stack
        .wait_docs("the waiting orders after reconnecting", T, |d| {
            all_paid(d, 4)
        })
        .await;
    let events = connection_events(&stack).await;
    assert_eq!(
        events.iter().filter(|(s, _)| *s == lost).count(),
        1,
        "{events:?}"
    );
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn replicas_racing_an_expired_token_refresh_it_once() {
    let mut stack = Stack::start(&AC).await;
    // Only the replicas below use the grant.
    stack.writer.as_mut().unwrap().kill();
    connect(&stack).await;
    let kv = stack.js.get_key_value("xero_tokens").await.unwrap();
    let key = ledgerline_xero_client::oauth::key(&stack.sandbox.tenant);
    // The stored access token is about to expire, as every replica sees it.
    let mut set = stored(&stack).await;
    set.expires_at = chrono::Utc::now().timestamp();
    kv.put(&key, serde_json::to_vec(&set).unwrap().into())
        .await
        .unwrap();
    let endpoint = ledgerline_xero_client::Endpoint {
        http: ledgerline_platform::tls::http_client("test").unwrap(),
        api_url: format!("{}/api.xro/2.0", stack.sandbox.base),
        identity_url: stack.sandbox.base.clone(),
        client_id: "ledgerline-sandbox".into(),
        client_secret: "sandbox-secret".into(),
        timeout: Duration::from_secs(10),
        scopes: String::new(),
    };
    let replicas: Vec<_> = (0..6)
        .map(|_| {
            let c = ledgerline_xero_client::oauth::Connection::new(
                &stack.sandbox.tenant,
                kv.clone(),
                None,
            );
            let endpoint = endpoint.clone();
            tokio::spawn(async move { c.access_token(&endpoint, None).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for r in replicas {
        tokens.push(r.await.unwrap().expect("every replica gets a token"));
    }
    assert!(
        tokens
            .iter()
            .all(|t| *t == tokens[0] && *t != set.access_token)
    );
    let counters = stack.sandbox.counters().await;
    assert_eq!(grants(&counters, "refresh_token"), 1, "{counters}");
    assert_eq!(counters["refresh_reuses"], 0, "{counters}");
    assert_eq!(stored(&stack).await.access_token, tokens[0]);
}

#[tokio::test]
async fn the_connect_command_takes_a_code_obtained_elsewhere() {
    let mut stack = Stack::start(&AC).await;
    stack.writer.as_mut().unwrap().kill();
    // The operator consented in a browser elsewhere and copied the code from the redirect.
    let redirect = "http://127.0.0.1:9/callback";
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("{}/identity/connect/authorize", stack.sandbox.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", "ledgerline-sandbox"),
            ("redirect_uri", redirect),
            ("scope", ledgerline_xero_client::plan::WRITER_SCOPES),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let api = format!("{}/api.xro/2.0", stack.sandbox.base);
    let args = [
        "--xero-grant-type",
        "authorization_code",
        "--xero-identity-url",
        &stack.sandbox.base,
        "--xero-api-url",
        &api,
        "connect",
        "--code",
        &code,
        "--redirect-uri",
        redirect,
    ]
    .map(str::to_owned);
    let nats = stack.nats.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary())
            .args(args)
            .env("NATS_URL", nats)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Connected tenant {}", stack.sandbox.tenant)),
        "{stdout}"
    );
    assert!(!stdout.contains(&code));
    let set = stored(&stack).await;
    assert!(set.revoked.is_none() && !set.refresh_token.is_empty());
}
