//! Orders the webhooks never delivered: the store (clarity-sim's REST API) holds them, the
//! pipeline does not; the reconciler's look at the store through webhook-ingest finds them,
//! and the default policy resyncs them, so they flow to Xero and the findings close.

use crate::helpers::*;
use clarity_sim::{Credentials, GenConfig, Generator, Store};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_the_webhooks_never_delivered_are_found_and_resynced() {
    // Three orders placed in the last hours; not one webhook sent.
    let mut config = GenConfig::new("main", 3);
    config.start = chrono::Utc::now() - chrono::Duration::hours(6);
    let events = Generator::new(7, config).events();
    let store = Arc::new(Store::from_events(&events).unwrap());
    let orders: Vec<(String, String, u64)> = store.with(|s| {
        s.orders
            .values()
            .map(|o| (o.id.to_string(), o.custom_key.clone(), u64::from(o.version)))
            .collect()
    });
    assert_eq!(orders.len(), 3);
    let creds = Credentials {
        username: "sync".into(),
        password: "pw".into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = clarity_sim::serve::router(store, creds);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut stack = Stack::start(&[("RECON_STORE_INTERVAL", "1s")]).await;
    stack.start_store_side(&api, "sync:pw");

    // Found on the first look that reaches the store; one resync from the oldest of them
    // brings every order changed since, so the rest may never need a finding of their own.
    assert!(
        eventually(WAIT, || async {
            stack
                .recon_events()
                .await
                .iter()
                .any(|f| f.kind == "unseen_order" && f.open)
        })
        .await,
        "{:?}\n{}",
        stack.recon_events().await,
        stack.output()
    );
    let events = stack.recon_events().await;
    let first = events
        .iter()
        .find(|f| f.kind == "unseen_order" && f.open)
        .unwrap();
    assert!(orders.iter().any(|(id, ..)| id == &first.order_id));
    assert_eq!(first.policy, "resync");
    assert_eq!(first.xero_side["pipeline version"], "0");
    let stored: usize = first
        .action_taken
        .strip_prefix("resync from the store: ")
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|s| s.strip_suffix(" stored"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{first:?}"));
    assert!(
        (1..=orders.len()).contains(&stored),
        "{}",
        first.action_taken
    );

    // Resynced through ingest and the normalizer: each reaches the projection at the store's
    // version, is in Xero (unless cancelled before it was invoiced), and its finding closes.
    for (id, number, version) in &orders {
        assert!(
            eventually(WAIT, || async {
                let Some(v) = stack.view(id).await else {
                    return false;
                };
                let seen = v["store_side"]["version"].as_u64().unwrap_or(0);
                let cancelled = v["store_side"]["status"] == "cancelled";
                let invoiced = v["xero"]["invoices"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty());
                seen >= *version
                    && (invoiced || cancelled)
                    && v["findings"].get("unseen_order").is_none()
            })
            .await,
            "order {number} resynced and written\n{:?}\n{}",
            stack.view(id).await,
            stack.output()
        );
    }
    assert!(
        eventually(WAIT, || async {
            let events = stack.recon_events().await;
            let count = |open: bool| {
                events
                    .iter()
                    .filter(|f| f.kind == "unseen_order" && f.open == open)
                    .count()
            };
            count(false) == count(true)
        })
        .await,
        "{:?}",
        stack.recon_events().await
    );
}
