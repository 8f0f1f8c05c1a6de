//! The reconciler beside the real pipeline: a nats-server, xero-sandbox (sending its webhooks
//! to the reconciler), xero-writer and the reconciler as child processes. Orders go straight to
//! ORDERS as canonical events; changes "in Xero" are made through the sandbox's API as a person
//! would.

use async_nats::jetstream;
use ledgerline_contract::v1::{
    Customer, EventMeta, Finding, LineItem, LineKind, Money, Order, OrderEvent, OrderEventType,
    OrderStatus, Payment, Totals,
};
use ledgerline_contract::{streams, subjects};
use ledgerline_platform::publish::Publisher;
use ledgerline_testkit::{NatsServer, ServiceProcess, find_workspace_binary, free_port};
use prost::Message as _;
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "sandbox-admin";
pub const HOOK_KEY: &str = "recon-test-webhook-key";
pub const API: &str = "recon-test-token";
pub const WAIT: Duration = Duration::from_secs(60);

pub fn workspace(name: &str) -> std::path::PathBuf {
    find_workspace_binary(name)
        .unwrap_or_else(|| panic!("{name} is not built: run `cargo build --workspace --bins`"))
}

/// Polls `check` every 100 ms until true or `timeout`.
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Stack {
    pub nats: NatsServer,
    pub sandbox: ServiceProcess,
    pub writer: Option<ServiceProcess>,
    pub recon: ServiceProcess,
    pub tenant: String,
    pub js: jetstream::Context,
    pub publisher: Publisher,
    pub http: reqwest::Client,
    /// webhook-ingest and the normalizer, once [`Stack::start_store_side`] ran.
    pub store_side: Vec<ServiceProcess>,
    writer_env: Vec<(String, String)>,
    recon_env: (String, Vec<(String, String)>),
}

impl Stack {
    /// Everything up, with the reconciler's `env` (policies, SLAs) on top of fast test SLAs.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(env, true).await
    }

    /// As [`Stack::start`]; `webhooks` false: the sandbox sends no webhooks (polling only).
    pub async fn start_with(env: &[(&str, &str)], webhooks: bool) -> Self {
        ledgerline_platform::tls::install_crypto_provider();
        let nats = tokio::task::spawn_blocking(NatsServer::start)
            .await
            .unwrap();
        let url = nats.url();
        let recon_addr = format!("127.0.0.1:{}", free_port());
        let hook = format!("http://{recon_addr}/webhooks/xero");
        let hook_args = ["--webhook-url", &hook, "--webhook-key", HOOK_KEY];
        let sandbox = ServiceProcess::start(
            &workspace("xero-sandbox"),
            if webhooks { &hook_args[..] } else { &[] },
            &[],
        );
        let base = sandbox.base_url();
        let api = format!("{base}/api.xro/2.0");
        let writer_env: Vec<(String, String)> = vec![
            ("NATS_URL".into(), url.clone()),
            ("XERO_IDENTITY_URL".into(), base.clone()),
            ("XERO_API_URL".into(), api.clone()),
            ("WRITER_MAX_LINGER".into(), "50ms".into()),
        ];
        let mut renv: Vec<(String, String)> = writer_env.clone();
        renv.extend([
            ("XERO_WEBHOOK_KEY".into(), HOOK_KEY.into()),
            ("RECON_API_TOKEN".into(), API.into()),
            ("RECON_INVOICE_SLA".into(), "2s".into()),
            ("RECON_SETTLE_SLA".into(), "2s".into()),
            ("RECON_SWEEP_EVERY".into(), "200ms".into()),
            ("RECON_POLL_INTERVAL".into(), "1h".into()),
            ("RECON_STORE_INTERVAL".into(), "1h".into()),
        ]);
        renv.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));

        let writer = ServiceProcess::start(&workspace("xero-writer"), &[], &pairs(&writer_env));
        let mut recon =
            ServiceProcess::spawn_at(&workspace("reconciler"), &recon_addr, &[], &pairs(&renv));
        recon.wait_ready(Duration::from_secs(60));
        let recon_env = (recon_addr, renv);
        let http = ledgerline_platform::tls::http_client("test").unwrap();
        let tenants: Value = http
            .get(format!("{base}/admin/tenants"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tenant = tenants[0]["tenant_id"].as_str().unwrap().to_owned();
        let client = async_nats::connect(&url).await.unwrap();
        let js = jetstream::new(client);
        let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
        Self {
            nats,
            sandbox,
            writer: Some(writer),
            recon,
            tenant,
            js,
            publisher,
            http,
            store_side: Vec::new(),
            writer_env,
            recon_env,
        }
    }

    /// Where the reconciler listens (`host:port`).
    pub fn recon_addr(&self) -> &str {
        &self.recon_env.0
    }

    /// Stops the reconciler (SIGTERM, then waits).
    pub fn stop_recon(&mut self) {
        self.recon.terminate(Duration::from_secs(20));
    }

    /// Starts the reconciler again on the same address and settings.
    pub fn start_recon(&mut self) {
        let (addr, env) = &self.recon_env;
        self.recon = ServiceProcess::spawn_at(&workspace("reconciler"), addr, &[], &pairs(env));
        self.recon.wait_ready(Duration::from_secs(60));
    }

    /// Starts webhook-ingest (reading the store's REST API at `api`, basic auth `user:pass`)
    /// and the normalizer, so a resync flows to Xero.
    pub fn start_store_side(&mut self, api: &str, user_pass: &str) {
        let env: Vec<(&str, &str)> = vec![("NATS_URL", self.writer_env[0].1.as_str())];
        let store_api = format!("main={api}");
        let creds = format!("main={user_pass}");
        let ingest = ServiceProcess::start(
            &workspace("webhook-ingest"),
            &[
                // The demo store's secret (no webhook is sent here).
                "--store",
                "main=whsec_bGVkZ2VybGluZS1kZW1vLXNlY3JldC0x",
                "--store-api",
                &store_api,
                "--store-api-credentials",
                &creds,
            ],
            &env,
        );
        let normalizer = ServiceProcess::start(&workspace("normalizer"), &[], &env);
        self.store_side = vec![ingest, normalizer];
    }

    /// Changes the sandbox's settings (faults, limits).
    pub async fn sandbox_settings(&self, patch: Value) {
        let r = self
            .http
            .post(format!("{}/admin/settings", self.sandbox.base_url()))
            .bearer_auth(ADMIN)
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    pub fn output(&self) -> String {
        let mut out = format!(
            "--- reconciler\n{}\n--- writer\n{}",
            self.recon.output(),
            self.writer.as_ref().map(|w| w.output()).unwrap_or_default()
        );
        for p in &self.store_side {
            out.push_str(&format!("\n--- {}\n{}", p.base_url(), p.output()));
        }
        out
    }

    /// Stops the writer (SIGKILL).
    pub fn stop_writer(&mut self) {
        if let Some(mut w) = self.writer.take() {
            w.kill();
        }
    }

    /// Starts the writer again.
    pub fn start_writer(&mut self) {
        let env: Vec<(&str, &str)> = self
            .writer_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.writer = Some(ServiceProcess::start(&workspace("xero-writer"), &[], &env));
    }

    pub async fn publish(&self, e: &OrderEvent) {
        let o = e.order.as_ref().unwrap();
        let ty = OrderEventType::try_from(e.r#type).unwrap();
        self.publisher
            .publish_proto(
                subjects::orders(&o.store, ty, &o.id, &o.number),
                &e.meta.as_ref().unwrap().event_id,
                e,
                Default::default(),
            )
            .await
            .unwrap();
    }

    /// The reconciler's view of an order (`None` before it has one).
    pub async fn view(&self, order_id: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!(
                "{}/v1/orders/main/{order_id}",
                self.recon.base_url()
            ))
            .bearer_auth(API)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    /// Open findings (kind, order key).
    pub async fn findings(&self) -> Vec<(String, String)> {
        let v: Value = self
            .http
            .get(format!("{}/v1/findings", self.recon.base_url()))
            .bearer_auth(API)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap_or_default().to_owned(),
                    f["order"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// True once the reconciler's consumers have nothing pending or unacked.
    pub async fn recon_caught_up(&self) -> bool {
        for spec in ledgerline_contract::consumers::reconciler() {
            let Ok(mut c) = self
                .js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    spec.durable.clone(),
                    spec.stream,
                )
                .await
            else {
                return false;
            };
            match c.info().await {
                Ok(i) if i.num_pending == 0 && i.num_ack_pending == 0 => {}
                _ => return false,
            }
        }
        true
    }

    /// Every finding event on RECON, in order.
    pub async fn recon_events(&self) -> Vec<Finding> {
        let (msgs, _) = ledgerline_platform::read::by_subjects(
            &self.js,
            streams::RECON.name,
            vec!["recon.>".into()],
            10_000,
        )
        .await
        .unwrap_or_default();
        msgs.iter()
            .filter_map(|m| Finding::decode(m.payload.as_ref()).ok())
            .collect()
    }

    pub async fn documents(&self) -> Value {
        self.http
            .get(format!(
                "{}/admin/tenants/{}/documents",
                self.sandbox.base_url(),
                self.tenant
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn invoice(&self, number: &str) -> Option<Value> {
        self.documents().await["Invoices"]
            .as_array()?
            .iter()
            .find(|i| i["InvoiceNumber"] == number)
            .cloned()
    }

    pub async fn counters(&self) -> Value {
        self.http
            .get(format!("{}/admin/counters", self.sandbox.base_url()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A change made in Xero by a person (another app's token).
    pub async fn as_accountant(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let token: Value = self
            .http
            .post(format!("{}/admin/tokens", self.sandbox.base_url()))
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = self
            .http
            .request(
                method,
                format!("{}/api.xro/2.0{path}", self.sandbox.base_url()),
            )
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("xero-tenant-id", &self.tenant)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
}

fn money(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.into(),
        currency: "NZD".into(),
    })
}

/// An order of one line, 100.00 + 15.00 GST, version `version`.
pub fn order(id: &str, version: u64, status: OrderStatus, paid: bool) -> Order {
    Order {
        id: id.into(),
        number: format!("SO-{id}"),
        store: "main".into(),
        version,
        status: status as i32,
        currency: "NZD".into(),
        customer: Some(Customer {
            identity_key: format!("c{id}@example.com"),
            email: format!("c{id}@example.com"),
            first_name: "Test".into(),
            last_name: format!("Customer {id}"),
            is_guest: true,
            active: true,
            ..Default::default()
        }),
        lines: vec![LineItem {
            kind: LineKind::Product as i32,
            sku: "W-1".into(),
            description: "Widget".into(),
            quantity: "1".into(),
            unit_price: money("100.00"),
            line_total: money("100.00"),
            tax_amount: money("15.00"),
            tax_rate: "0.15".into(),
            source_tax_code: "GST15".into(),
            taxable: true,
            ..Default::default()
        }],
        totals: Some(Totals {
            subtotal: money("100.00"),
            tax: money("15.00"),
            total: money("115.00"),
            ..Default::default()
        }),
        payments: if paid {
            vec![Payment {
                id: format!("pay-{id}"),
                amount: money("115.00"),
                method: "Credit Card".into(),
                received: true,
                received_at: "2026-12-07T09:00:00Z".into(),
                ..Default::default()
            }]
        } else {
            vec![]
        },
        amount_paid: money(if paid { "115.00" } else { "0.00" }),
        balance_due: money(if paid { "0.00" } else { "115.00" }),
        created_at: "2026-12-07T08:00:00Z".into(),
        updated_at: "2026-12-07T09:00:00Z".into(),
        ..Default::default()
    }
}

pub fn event(o: &Order, ty: OrderEventType, id: &str) -> OrderEvent {
    OrderEvent {
        meta: Some(EventMeta {
            event_id: id.into(),
            source_event_id: id.into(),
            mapping_revision: "rev-1".into(),
            occurred_at: o.updated_at.clone(),
            store: o.store.clone(),
            source_type: "test".into(),
            raw_sequence: 0,
        }),
        r#type: ty as i32,
        order: Some(o.clone()),
    }
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
