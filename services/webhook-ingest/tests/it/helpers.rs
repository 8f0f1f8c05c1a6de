use ledgerline_platform::standard_webhooks::{Secret, signature_header, unix_now};
use ledgerline_testkit::{NatsServer, ServiceProcess};
use std::time::Duration;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const ROTATED: &str = "whsec_bGVkZ2VybGluZS1yb3RhdGVkLXNlY3JldA==";

pub fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_webhook-ingest"))
}

pub struct Stack {
    pub nats: NatsServer,
    pub ingest: ServiceProcess,
    pub http: reqwest::Client,
}

impl Stack {
    pub fn start(extra: &[&str]) -> Self {
        let nats = NatsServer::start();
        let store = format!("main={SECRET}");
        let mut args = vec![
            "--store",
            store.as_str(),
            "--publish-timeout",
            "2s",
            "--nats-connect-timeout",
            "10s",
        ];
        args.extend_from_slice(extra);
        let ingest = ServiceProcess::start(binary(), &args, &[("NATS_URL", &nats.url())]);
        ledgerline_platform::tls::install_crypto_provider();
        Self {
            nats,
            ingest,
            http: ledgerline_platform::tls::http_client("test").unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ingest.base_url())
    }

    pub async fn send(&self, store: &str, delivery: &Delivery) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(&format!("/webhooks/clarity/{store}")))
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (k, v) in &delivery.headers {
            req = req.header(k, v);
        }
        req.send().await.expect("request")
    }

    pub async fn js(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.nats.url()).await.expect("connect");
        async_nats::jetstream::new(client)
    }

    pub async fn raw_count(&self) -> u64 {
        let js = self.js().await;
        let mut stream = js.get_stream("RAW").await.expect("RAW exists");
        stream.info().await.expect("info").state.messages
    }
}

pub struct Delivery {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

pub fn event_body(id: &str, ty: &str) -> Vec<u8> {
    let example = include_str!("../../../../../shared/reference/clarity/sales_order.created.json");
    let mut v: serde_json::Value = serde_json::from_str(example).expect("example parses");
    v["id"] = id.into();
    v["type"] = ty.into();
    serde_json::to_vec(&v).expect("serialize")
}

pub fn signed(id: &str, body: Vec<u8>, secret: &str, timestamp: i64) -> Delivery {
    let sig = signature_header(
        &[Secret::parse(secret).expect("secret")],
        id,
        timestamp,
        &body,
    );
    Delivery {
        body,
        headers: vec![
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), timestamp.to_string()),
            ("webhook-signature".into(), sig),
            ("x-clarity-attempt".into(), "1".into()),
        ],
    }
}

pub fn order_created(id: &str) -> Delivery {
    signed(
        id,
        event_body(id, "sales_order.created"),
        SECRET,
        unix_now(),
    )
}

/// Polls an async condition every 20 ms, up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
