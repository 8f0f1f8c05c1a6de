use crate::connect;
use ledgerline_contract::streams::Limits;
use ledgerline_platform::consume::{Outcome, RunConfig, run};
use ledgerline_platform::nats::ensure_topology;
use ledgerline_testkit::NatsServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn stop_finishes_and_acks_in_flight_work() {
    let nats = NatsServer::start();
    let (client, js) = connect(&nats).await;
    ensure_topology(&js, Limits::default(), &[], &[])
        .await
        .unwrap();
    for i in 0..3 {
        js.publish("orders.main.created", format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let stream = js.get_stream("ORDERS").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("drain".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();

    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let handler = {
        let (started, finished, release) = (started.clone(), finished.clone(), release.clone());
        move |_m: async_nats::jetstream::Message| {
            let (started, finished, release) = (started.clone(), finished.clone(), release.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                finished.fetch_add(1, Ordering::SeqCst);
                Outcome::Ack
            }
        }
    };
    let config = RunConfig {
        name: "drain".into(),
        concurrency: 1,
        pull_expires: Duration::from_millis(500),
    };
    let task = tokio::spawn(run(
        client,
        consumer.clone(),
        config,
        shutdown.clone(),
        handler,
    ));

    // One message is in flight (concurrency 1); then the stop comes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handler never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returns after the stop")
        .unwrap();

    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "no new work after the stop"
    );
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the in-flight handler finished"
    );
    // Acks are asynchronous in JetStream: the server applies the one flushed at the stop shortly
    // after, so poll (bounded) for it.
    let mut c = consumer;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let info = loop {
        let info = c.info().await.unwrap().clone();
        if info.ack_floor.stream_sequence == 1 || tokio::time::Instant::now() >= deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "the in-flight message was acked"
    );
    assert_eq!(
        info.num_pending + info.num_ack_pending as u64,
        2,
        "the other two wait for the next run"
    );
}
