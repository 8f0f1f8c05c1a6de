use crate::receiver::Receiver;
use clarity_sim::load::{self, EXAMPLE_BODY, LoadConfig};
use ledgerline_platform::standard_webhooks::{Secret, Verifier};
use std::collections::HashSet;

#[test]
fn copies_are_unique_and_the_same_size() {
    let (a_id, a) = load::unique_body(1);
    let (b_id, b) = load::unique_body(2);
    assert_ne!(a_id, b_id);
    assert_eq!(a.len(), EXAMPLE_BODY.len());
    assert_eq!(b.len(), EXAMPLE_BODY.len());
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["id"], a_id.as_str());
}

#[tokio::test]
async fn load_counts_accepted_requests_with_verified_signatures() {
    let secret = Secret::from_bytes(&[5u8; 32]).unwrap();
    let rx = Receiver::start(Verifier::new(vec![secret.clone()])).await;
    let report = load::run(LoadConfig {
        target: rx.url.clone(),
        secret,
        connections: 8,
        duration: None,
        requests: Some(300),
        nats_url: None,
        first: 0,
        pid: Some(std::process::id()),
    })
    .await
    .unwrap();
    assert_eq!(
        (report.requests, report.accepted, report.failed),
        (300, 300, 0)
    );
    assert!(report.p50_ms <= report.p99_ms);
    assert!(report.peak_rss_kib.unwrap() > 0);
    assert!(report.server_cpu_seconds.is_some_and(|s| s >= 0.0));
    let log = rx.log();
    assert!(log.iter().all(|r| r.status == 200));
    assert_eq!(
        log.iter()
            .map(|r| r.id.as_str())
            .collect::<HashSet<_>>()
            .len(),
        300
    );
}

#[test]
fn a_spread_is_the_median_and_the_range() {
    let s = load::Spread::of(&[3.0, 1.0, 2.0, 10.0, 4.0]);
    assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
    assert_eq!(load::Spread::of(&[1.0, 2.0]).median, 1.5);
}
