use crate::receiver::Receiver;
use clarity_sim::model::{Envelope, EventType, SalesOrder};
use clarity_sim::send::{Faults, SendConfig, Sender};
use clarity_sim::{GenConfig, Generator};
use ledgerline_platform::standard_webhooks::{Secret, Verifier};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

fn secret() -> Secret {
    Secret::from_bytes(&[7u8; 32]).unwrap()
}

fn config(url: &str) -> SendConfig {
    let mut cfg = SendConfig::new(url, secret());
    cfg.time_scale = 0.001; // 5 s → 5 ms
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

#[tokio::test]
async fn every_event_arrives_signed_and_in_order_per_order() {
    let rx = Receiver::start(Verifier::new(vec![secret()])).await;
    let events = Generator::new(11, GenConfig::new("main", 30)).events();
    let report = Sender::new(config(&rx.url)).unwrap().send(&events).await;
    assert_eq!(report.delivered, events.len(), "{report:?}");
    assert!(report.undelivered.is_empty());
    let log = rx.log();
    assert!(
        log.iter().all(|r| r.status == 200),
        "every delivery verified"
    );
    assert_eq!(log.len(), events.len());
    // Per partition, arrival order is timeline order.
    let pos: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let key: HashMap<&str, &str> = events
        .iter()
        .map(|e| (e.id.as_str(), e.partition_key.as_str()))
        .collect();
    let mut last: HashMap<&str, usize> = HashMap::new();
    for r in &log {
        let p = pos[r.id.as_str()];
        let k = key[r.id.as_str()];
        assert!(last.get(k).is_none_or(|prev| *prev < p), "{k} out of order");
        last.insert(k, p);
        assert_eq!(r.attempt, 1);
    }
    let topics: std::collections::HashSet<&str> = log.iter().map(|r| r.topic.as_str()).collect();
    assert!(topics.contains("sales_order.created"));
}

#[tokio::test]
async fn retries_on_503_and_429_honouring_retry_after() {
    let rx = Receiver::start(Verifier::new(vec![secret()])).await;
    rx.script(&[(503, None), (429, Some(1)), (500, None)]);
    let events = Generator::new(1, GenConfig::new("main", 1)).events();
    let first = events.into_iter().next().unwrap();
    let mut cfg = config(&rx.url);
    cfg.concurrency = 1;
    let report = Sender::new(cfg)
        .unwrap()
        .send(std::slice::from_ref(&first))
        .await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(report.attempts, 4);
    assert_eq!(report.retries, 3);
    assert_eq!(report.responses.get("503"), Some(&1));
    assert_eq!(report.responses.get("429"), Some(&1));
    let log = rx.log();
    assert_eq!(
        log.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(
        log.iter().all(|r| r.id == first.id),
        "same webhook-id on every retry"
    );
    // The scheduled delay is 300 s × 0.001 = 0.3 s; Retry-After: 1 stretched it to a second.
    let gap = log[2].at - log[1].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After honoured: {gap:?}"
    );
    assert!(
        log[1].at - log[0].at < Duration::from_millis(900),
        "no Retry-After: scaled schedule"
    );
}

#[tokio::test]
async fn stops_everything_on_410() {
    let rx = Receiver::start(Verifier::new(vec![secret()])).await;
    rx.script(&[(200, None), (200, None), (410, None)]);
    let events = Generator::new(2, GenConfig::new("main", 10)).events();
    let mut cfg = config(&rx.url);
    cfg.concurrency = 1;
    let report = Sender::new(cfg).unwrap().send(&events).await;
    assert!(report.disabled);
    assert_eq!(report.delivered, 2);
    assert_eq!(rx.log().len(), 3, "nothing after the 410");
    assert_eq!(report.undelivered.len(), events.len() - 2);
}

#[tokio::test]
async fn final_4xx_is_not_retried() {
    let rx = Receiver::start(Verifier::new(vec![secret()])).await;
    rx.script(&[(400, None)]);
    let events = Generator::new(2, GenConfig::new("main", 1)).events();
    let report = Sender::new(config(&rx.url))
        .unwrap()
        .send(&events[..1])
        .await;
    assert_eq!(report.rejected.get("400"), Some(&1));
    assert_eq!(report.attempts, 1);
    assert_eq!(report.undelivered, vec![events[0].id.clone()]);
}

#[tokio::test]
async fn faults_are_injected_and_real_events_still_arrive() {
    let next = Secret::from_bytes(&[9u8; 32]).unwrap();
    let rx = Receiver::start(Verifier::new(vec![secret(), next.clone()])).await;
    let events = Generator::new(21, GenConfig::new("main", 60)).events();
    let mut cfg = config(&rx.url);
    cfg.faults = "duplicates,reorder,stale,badsig,rotate,oversize,burst"
        .parse::<Faults>()
        .unwrap();
    cfg.next_secret = Some(next);
    cfg.rate = Some(5000.0);
    cfg.fault_seed = 4;
    let report = Sender::new(cfg).unwrap().send(&events).await;
    assert_eq!(report.delivered, events.len(), "{report:?}");
    assert!(report.duplicates_sent > 0);
    let only = |kind: &str, status: &str| {
        let m = &report.injected[kind];
        assert!(m.keys().all(|s| s == status), "{kind}: {m:?}");
        m[status]
    };
    assert!(only("stale", "401") > 0);
    assert!(only("badsig", "401") > 0);
    assert!(only("oversize", "413") > 0);
    let log = rx.log();
    // Rotation: single old-key, dual, then single new-key signatures.
    let counts: BTreeMap<usize, usize> =
        log.iter()
            .filter(|r| r.status == 200)
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.signature.split(' ').count()).or_default() += 1;
                m
            });
    assert!(
        counts.get(&1).copied().unwrap_or(0) > 0 && counts.get(&2).copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    // Reordering: some order's first arrival is not its `created` event.
    let mut first_seen: HashMap<String, String> = HashMap::new();
    for r in log.iter().filter(|r| r.status == 200) {
        let e = events.iter().find(|e| e.id == r.id).unwrap();
        first_seen
            .entry(e.partition_key.clone())
            .or_insert_with(|| r.topic.clone());
    }
    assert!(
        first_seen
            .iter()
            .any(|(k, t)| k.starts_with("order:") && t != EventType::SalesOrderCreated.as_str()),
        "some order arrived out of order"
    );
    // A duplicate is the same id delivered twice with 2xx.
    let mut ok_by_id: HashMap<&str, usize> = HashMap::new();
    for r in log.iter().filter(|r| r.status == 200) {
        *ok_by_id.entry(r.id.as_str()).or_default() += 1;
    }
    assert!(ok_by_id.values().any(|n| *n >= 2));
    let body: Envelope<SalesOrder> = serde_json::from_slice(
        &events
            .iter()
            .find(|e| e.event_type == EventType::SalesOrderCreated)
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body.data.version, 1);
}
