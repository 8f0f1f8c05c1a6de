use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context};
use ledgerline_contract::headers;
use ledgerline_testkit::{NatsServer, ServiceProcess};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_normalizer"))
}

pub fn example(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/inputs")
        .join(name);
    std::fs::read(p).expect("input exists")
}

/// The example order with another event id (and optionally type).
pub fn order_body(id: &str) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&example("example_sales_order_created.json")).unwrap();
    v["id"] = id.into();
    serde_json::to_vec(&v).unwrap()
}

pub struct Stack {
    pub nats: NatsServer,
    pub normalizer: ServiceProcess,
    pub js: Context,
}

impl Stack {
    pub async fn start(extra: &[&str]) -> Self {
        let nats = NatsServer::start();
        let normalizer = start_normalizer(&nats, extra);
        let client = async_nats::connect(nats.url()).await.expect("connect");
        Self {
            nats,
            normalizer,
            js: jetstream::new(client),
        }
    }

    /// Stores a raw event in RAW the way webhook-ingest does.
    pub async fn publish_raw(&self, id: &str, topic: &str, body: Vec<u8>) {
        publish_raw(&self.js, id, topic, body).await
    }

    pub async fn count(&self, stream: &str) -> u64 {
        count(&self.js, stream).await
    }

    pub async fn messages(&self, stream: &str) -> Vec<jetstream::message::StreamMessage> {
        let s = self.js.get_stream(stream).await.expect("stream");
        let last = s.cached_info().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            if let Ok(m) = s.get_raw_message(seq).await {
                out.push(m);
            }
        }
        out
    }

    pub async fn metrics(&self) -> String {
        let addr = self.normalizer.addr().to_owned();
        tokio::task::spawn_blocking(move || ledgerline_testkit::http_get(&addr, "/metrics"))
            .await
            .unwrap()
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

pub fn start_normalizer(nats: &NatsServer, extra: &[&str]) -> ServiceProcess {
    let mut args = vec![
        "--retry-delays",
        "50ms",
        "--mapping-poll",
        "100ms",
        "--nats-connect-timeout",
        "10s",
    ];
    args.extend_from_slice(extra);
    ServiceProcess::start(binary(), &args, &[("NATS_URL", &nats.url())])
}

pub async fn publish_raw(js: &Context, id: &str, topic: &str, body: Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, id);
    h.insert(headers::WEBHOOK_ID, id);
    h.insert(headers::CLARITY_TOPIC, topic);
    h.insert(headers::CLARITY_STORE, "main");
    h.insert(headers::ORIGIN, "webhook");
    js.publish_with_headers(format!("raw.clarity.main.{topic}"), h, body.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

pub async fn count(js: &Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Polls `check` every 25 ms until true or `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub const WAIT: Duration = Duration::from_secs(20);
