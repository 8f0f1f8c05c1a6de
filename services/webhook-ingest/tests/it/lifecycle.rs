use crate::helpers::*;
use ledgerline_testkit::{NatsServer, ServiceProcess, wait_until};
use std::time::Duration;

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    let stack = Stack::start(&[]);
    let mut ingest = stack.ingest;
    let status = ingest.terminate(Duration::from_secs(30)).expect("exited");
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        ingest.output()
    );
    assert!(
        ingest.output().contains("webhook-ingest stopped."),
        "{}",
        ingest.output()
    );
}

#[test]
fn readyz_follows_nats() {
    let mut stack = Stack::start(&[]);
    assert!(matches!(stack.ingest.get("/readyz"), Ok((200, _))));
    assert!(matches!(stack.ingest.get("/healthz"), Ok((200, _))));
    stack.nats.stop();
    let ingest = &stack.ingest;
    assert!(wait_until(Duration::from_secs(20), || matches!(
        ingest.get("/readyz"),
        Ok((503, _))
    )));
    assert!(
        matches!(ingest.get("/healthz"), Ok((200, _))),
        "alive while NATS is down"
    );
    stack.nats.start_again();
    let ingest = &stack.ingest;
    assert!(wait_until(Duration::from_secs(20), || matches!(
        ingest.get("/readyz"),
        Ok((200, _))
    )));
}

#[test]
fn starts_on_defaults_with_only_nats_url_and_listen() {
    let nats = NatsServer::start();
    let mut p = ServiceProcess::start(binary(), &[], &[("NATS_URL", &nats.url())]);
    assert!(
        p.output().contains("demo"),
        "warns that the demo secret is in use"
    );
    let (_, metrics) = p.get("/metrics").unwrap();
    assert!(
        metrics.is_empty() || metrics.contains('#') || metrics.contains("ingest_"),
        "{metrics}"
    );
    assert!(p.terminate(Duration::from_secs(30)).unwrap().success());
}

#[test]
fn bad_configuration_fails_fast_naming_the_setting() {
    let nats = NatsServer::start();
    for (args, envs, expect) in [
        (
            vec!["--store", "Main=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            vec![],
            "INGEST_STORES",
        ),
        (vec![], vec![("INGEST_MAX_BODY", "lots")], "--max-body"),
        (
            vec![],
            vec![("LEDGERLINE_CONFIG", "/nonexistent/ledgerline.toml")],
            "LEDGERLINE_CONFIG",
        ),
        (vec!["--nats-user", "bob"], vec![], "NATS_PASSWORD"),
    ] {
        let mut p = ServiceProcess::spawn(
            binary(),
            &args,
            &[&[("NATS_URL", nats.url().as_str())][..], &envs[..]].concat(),
        );
        let status = p.wait_exit(Duration::from_secs(30)).expect("exits");
        assert!(!status.success());
        assert!(
            p.output().contains(expect),
            "expected {expect:?} in:\n{}",
            p.output()
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let nats = NatsServer::start();
    let token = "operator-token-s3cr3t-value";
    let store = format!("main={SECRET}");
    let p = ServiceProcess::start(
        binary(),
        &["--store", &store],
        &[
            ("NATS_URL", &nats.url()),
            ("INGEST_OPERATOR_TOKEN", token),
            ("RUST_LOG", "trace"),
            ("NATS_TOKEN", "nats-token-s3cr3t"),
        ],
    );
    ledgerline_platform::tls::install_crypto_provider();
    let http = ledgerline_platform::tls::http_client("test").unwrap();
    let d = order_created("evt_logs_1");
    let mut req = http
        .post(format!("{}/webhooks/clarity/main", p.base_url()))
        .body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 202);
    let bad = http
        .post(format!("{}/resync/main", p.base_url()))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let out = p.output();
    let signature = &d
        .headers
        .iter()
        .find(|(k, _)| k == "webhook-signature")
        .unwrap()
        .1;
    for secret in [
        SECRET,
        &SECRET[6..],
        token,
        signature.as_str(),
        "nats-token-s3cr3t",
    ] {
        assert!(
            !out.contains(secret),
            "a secret leaked into the logs:\n{out}"
        );
    }
}

#[test]
fn an_old_nats_server_is_refused_clearly() {
    let old = std::path::Path::new("/usr/sbin/nats-server");
    let version = std::process::Command::new(old).arg("--version").output();
    let Ok(version) = version else {
        eprintln!(
            "no Debian nats-server at {}; nothing old to refuse here",
            old.display()
        );
        return;
    };
    if !String::from_utf8_lossy(&version.stdout).contains("v2.9") {
        eprintln!(
            "{} is not a 2.9 server; nothing old to refuse here",
            old.display()
        );
        return;
    }
    let nats = NatsServer::start_binary(old);
    let mut p = ServiceProcess::spawn(binary(), &[], &[("NATS_URL", &nats.url())]);
    let status = p.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(!status.success());
    assert!(p.output().contains("2.10 or newer"), "{}", p.output());
}
