use crate::connect;
use ledgerline_contract::streams::{self, Limits};
use ledgerline_contract::{buckets, consumers};
use ledgerline_platform::nats::{ensure_consumer, ensure_topology};
use ledgerline_testkit::NatsServer;

#[tokio::test]
async fn topology_is_idempotent_and_applies_changed_settings() {
    let nats = NatsServer::start();
    let (_c, js) = connect(&nats).await;
    let writer = consumers::writer_orders("tenant-a", &["main".into()]);
    let all_buckets = buckets::ALL.to_vec();
    ensure_topology(
        &js,
        Limits::default(),
        std::slice::from_ref(&writer),
        &all_buckets,
    )
    .await
    .unwrap();
    ensure_topology(
        &js,
        Limits::default(),
        std::slice::from_ref(&writer),
        &all_buckets,
    )
    .await
    .unwrap();

    for spec in streams::ALL {
        let mut s = js.get_stream(spec.name).await.unwrap();
        let cfg = &s.info().await.unwrap().config;
        assert_eq!(cfg.duplicate_window, spec.duplicate_window, "{}", spec.name);
        assert_eq!(cfg.max_bytes, spec.max_bytes, "{}", spec.name);
        assert_eq!(
            cfg.discard,
            async_nats::jetstream::stream::DiscardPolicy::New,
            "{}",
            spec.name
        );
    }
    for b in buckets::ALL {
        js.get_key_value(b.bucket)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.bucket));
    }

    // A changed setting is applied: the tenant gets a second store.
    let changed = consumers::writer_orders("tenant-a", &["main".into(), "outlet".into()]);
    ensure_consumer(&js, &changed).await.unwrap();
    let stream = js.get_stream("ORDERS").await.unwrap();
    let info = stream.consumer_info(&changed.durable).await.unwrap();
    assert_eq!(
        info.config.filter_subjects,
        vec!["orders.main.>", "orders.outlet.>"]
    );

    // And a changed stream limit too.
    let bigger = Limits {
        replicas: 1,
        max_bytes_factor: 2,
    };
    ensure_topology(&js, bigger, &[], &[]).await.unwrap();
    let mut raw = js.get_stream("RAW").await.unwrap();
    assert_eq!(
        raw.info().await.unwrap().config.max_bytes,
        streams::RAW.max_bytes * 2
    );
}

#[tokio::test]
async fn messages_survive_a_server_restart() {
    let mut nats = NatsServer::start();
    {
        let (_c, js) = connect(&nats).await;
        ensure_topology(&js, Limits::default(), &[], &[])
            .await
            .unwrap();
        for i in 0..5 {
            js.publish("orders.main.created", format!("m{i}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    nats.restart();
    let (_c, js) = connect(&nats).await;
    let mut s = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 5);
    nats.kill();
    nats.start_again();
    let (_c, js) = connect(&nats).await;
    let mut s = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(
        s.info().await.unwrap().state.messages,
        5,
        "kept across a crash too"
    );
}
