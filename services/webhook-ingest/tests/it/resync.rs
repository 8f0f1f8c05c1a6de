use crate::helpers::*;
use clarity_sim::{Credentials, GenConfig, Generator, Store};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// Serves a generated store's REST API in-process; returns its base URL and the order count.
async fn store_api(orders: usize) -> (String, usize) {
    let events = Generator::new(11, GenConfig::new("main", orders)).events();
    let store = Arc::new(Store::from_events(&events).unwrap());
    let creds = Credentials {
        username: "sync".into(),
        password: "pw".into(),
    };
    let app = clarity_sim::serve::router(store, creds);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, app).await });
    (format!("http://{addr}"), orders)
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}

#[tokio::test]
async fn resync_twice_stores_each_order_version_once() {
    let (api, orders) = store_api(120).await;
    let store_api_arg = format!("main={api}");
    let stack = Stack::start(&[
        "--store-api",
        &store_api_arg,
        "--store-api-credentials",
        "main=sync:pw",
        "--operator-token",
        "op-token",
    ]);
    let url = stack.url("/resync/main");
    let denied = stack
        .http
        .post(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);

    let first: serde_json::Value = stack
        .http
        .post(&url)
        .bearer_auth("op-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["orders"].as_u64().unwrap() as usize,
        orders,
        "{first}"
    );
    assert_eq!(first["stored"].as_u64().unwrap() as usize, orders);
    let second: serde_json::Value = stack
        .http
        .post(&url)
        .bearer_auth("op-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["stored"].as_u64(), Some(0), "{second}");
    assert_eq!(second["duplicates"].as_u64().unwrap() as usize, orders);
    assert_eq!(stack.raw_count().await as usize, orders);

    // Each stored event is a well-formed sales_order.updated naming the order's version.
    let js = stack.js().await;
    let stream = js.get_stream("RAW").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("check".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer
        .fetch()
        .max_messages(orders)
        .messages()
        .await
        .unwrap();
    let mut seen = HashMap::new();
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        assert_eq!(m.subject.as_str(), "raw.clarity.main.sales_order.updated");
        assert_eq!(
            m.headers
                .as_ref()
                .unwrap()
                .get("Ledgerline-Origin")
                .unwrap()
                .as_str(),
            "resync"
        );
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let id = body["id"].as_str().unwrap().to_owned();
        let version = body["data"]["Version"].as_u64().unwrap();
        assert!(id.ends_with(&format!("_v{version}")), "{id}");
        seen.insert(id, version);
    }
    assert_eq!(seen.len(), orders);
}

#[tokio::test]
async fn the_resync_command_stores_each_order_version_once() {
    let (api, orders) = store_api(30).await;
    let stack = Stack::start(&[]);
    let nats_url = stack.nats.url();
    let run = move || {
        let out = std::process::Command::new(binary())
            .args([
                "--store",
                &format!("main={SECRET}"),
                "--store-api",
                &format!("main={api}"),
            ])
            .args([
                "--store-api-credentials",
                "main=sync:pw",
                "resync",
                "--store",
                "main",
                "--quiet",
            ])
            .env("NATS_URL", &nats_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    assert!(
        first.contains(&format!(
            "{orders} orders read, {orders} stored, 0 already stored"
        )),
        "{first}"
    );
    let second = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(
        second.contains(&format!(
            "{orders} orders read, 0 stored, {orders} already stored"
        )),
        "{second}"
    );
    assert_eq!(stack.raw_count().await as usize, orders);
}
