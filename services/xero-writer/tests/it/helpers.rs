use async_nats::jetstream;
use ledgerline_contract::v1::{
    Customer, EventMeta, LineItem, LineKind, Money, Order, OrderEvent, OrderEventType, OrderStatus,
    Payment, Refund, RefundEvent, Totals,
};
use ledgerline_contract::{streams, subjects};
use ledgerline_platform::publish::Publisher;
use ledgerline_testkit::{NatsServer, ServiceProcess};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;
use std::time::Duration;

pub const ADMIN: &str = "sandbox-admin";

pub fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_xero-writer"))
}

/// An in-process xero-sandbox on a free port.
pub struct Sandbox {
    pub base: String,
    pub tenant: String,
    pub tenants: Vec<String>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Sandbox {
    pub async fn start() -> Self {
        Self::start_tenants(1).await
    }

    /// A sandbox with `n` organisations; `tenant` is the first, `tenant_ids()` lists them all.
    pub async fn start_tenants(n: usize) -> Self {
        ledgerline_platform::tls::install_crypto_provider();
        let mut config = xero_sandbox::Config::for_tests();
        config.tenants = n;
        let sandbox = xero_sandbox::Sandbox::build(config).expect("sandbox builds");
        let tenants: Vec<String> = sandbox.tenant_ids().iter().map(|t| t.to_string()).collect();
        let tenant = tenants[0].clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = sandbox
                .run(listener, async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            base,
            tenant,
            tenants,
            _stop: tx,
        }
    }

    /// Every tenant's documents.
    pub async fn documents_of(&self, tenant: &str) -> Value {
        ledgerline_platform::tls::http_client("test")
            .unwrap()
            .get(format!("{}/admin/tenants/{tenant}/documents", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("documents")
            .json()
            .await
            .expect("json")
    }

    /// Disconnects a tenant as an org admin would (Xero answers 403 from then on).
    pub async fn disconnect(&self, tenant: &str) {
        let list: Value = ledgerline_platform::tls::http_client("test")
            .unwrap()
            .get(format!("{}/admin/tenants", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let conn = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tenant_id"] == tenant)
            .unwrap()["connection_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = self.token().await;
        let r = ledgerline_platform::tls::http_client("test")
            .unwrap()
            .delete(format!("{}/connections/{conn}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        let r = ledgerline_platform::tls::http_client("test")
            .unwrap()
            .post(format!("{}/admin{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("admin call");
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn settings(&self, body: Value) {
        self.admin_post("/settings", body).await;
    }

    pub async fn documents(&self) -> Value {
        ledgerline_platform::tls::http_client("test")
            .unwrap()
            .get(format!(
                "{}/admin/tenants/{}/documents",
                self.base, self.tenant
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("documents")
            .json()
            .await
            .expect("json")
    }

    pub async fn counters(&self) -> Value {
        ledgerline_platform::tls::http_client("test")
            .unwrap()
            .get(format!("{}/admin/counters", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The sandbox's request log (last 2,000 API calls).
    pub async fn requests(&self) -> Vec<Value> {
        ledgerline_platform::tls::http_client("test")
            .unwrap()
            .get(format!("{}/admin/requests?limit=2000", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A token for direct API calls (setting up pre-existing documents).
    pub async fn token(&self) -> String {
        let v = self.admin_post("/tokens", serde_json::json!({})).await;
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// A direct API call (as a person in Xero would make the change).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let token = self.token().await;
        let mut req = ledgerline_platform::tls::http_client("test")
            .unwrap()
            .request(method, format!("{}/api.xro/2.0{path}", self.base))
            .bearer_auth(token)
            .header("xero-tenant-id", &self.tenant)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    pub async fn api_put(&self, path: &str, body: Value) -> Value {
        let token = self.token().await;
        ledgerline_platform::tls::http_client("test")
            .unwrap()
            .put(format!("{}/api.xro/2.0{path}", self.base))
            .bearer_auth(token)
            .header("xero-tenant-id", &self.tenant)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn invoices(docs: &Value) -> Vec<Value> {
    docs["Invoices"].as_array().cloned().unwrap_or_default()
}

pub fn invoice<'a>(docs: &'a Value, number: &str) -> Option<&'a Value> {
    docs["Invoices"]
        .as_array()?
        .iter()
        .find(|i| i["InvoiceNumber"] == number)
}

pub fn d(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        other => Decimal::from_str(&other.to_string()).unwrap(),
    }
}

pub struct Stack {
    pub nats: NatsServer,
    pub sandbox: Sandbox,
    pub writer: Option<ServiceProcess>,
    pub publisher: Publisher,
    pub js: jetstream::Context,
    pub args: Vec<String>,
}

impl Stack {
    pub async fn start(extra: &[&str]) -> Self {
        let sandbox = Sandbox::start().await;
        Self::start_with(sandbox, extra).await
    }

    pub async fn start_with(sandbox: Sandbox, extra: &[&str]) -> Self {
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        for s in streams::ALL {
            js.create_or_update_stream(s.config(Default::default()))
                .await
                .unwrap();
        }
        let mut args: Vec<String> = vec![
            "--tenant".into(),
            format!("{}=main", sandbox.tenant),
            "--xero-identity-url".into(),
            sandbox.base.clone(),
            "--xero-api-url".into(),
            format!("{}/api.xro/2.0", sandbox.base),
            "--nats-connect-timeout".into(),
            "10s".into(),
        ];
        if !extra.contains(&"--max-linger") {
            args.extend(["--max-linger".to_owned(), "200ms".to_owned()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut stack = Self {
            nats,
            sandbox,
            writer: None,
            publisher: Publisher::new(js.clone(), Duration::from_secs(5)),
            js,
            args,
        };
        stack.start_writer();
        stack
    }

    pub fn start_writer(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let url = self.nats.url();
        self.writer = Some(ServiceProcess::start(
            binary(),
            &args,
            &[("NATS_URL", &url)],
        ));
    }

    pub fn output(&self) -> String {
        self.writer.as_ref().map(|w| w.output()).unwrap_or_default()
    }

    pub async fn publish(&self, ev: &OrderEvent) {
        let ty = OrderEventType::try_from(ev.r#type).unwrap();
        let o = ev.order.as_ref().unwrap();
        self.publisher
            .publish_proto(
                subjects::orders(&o.store, ty, &o.id, &o.number),
                &ev.meta.as_ref().unwrap().event_id,
                ev,
                Default::default(),
            )
            .await
            .expect("published");
    }

    pub async fn publish_refund(&self, ev: &RefundEvent) {
        self.publisher
            .publish_proto(
                subjects::orders(
                    "main",
                    OrderEventType::Refunded,
                    &ev.order_id,
                    &ev.order_number,
                ),
                &ev.meta.as_ref().unwrap().event_id,
                ev,
                Default::default(),
            )
            .await
            .expect("published");
    }

    /// Polls the sandbox's documents until `check` holds (bounded).
    pub async fn wait_docs(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let docs = self.sandbox.documents().await;
            if check(&docs) {
                return docs;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; invoices: {}\nwriter output:\n{}",
                    serde_json::to_string_pretty(&docs["Invoices"]).unwrap_or_default(),
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Number of dead letters in the DLQ stream.
    pub async fn dead_letters(&self) -> Vec<ledgerline_contract::v1::DeadLetter> {
        use prost::Message as _;
        let mut stream = self.js.get_stream("DLQ").await.unwrap();
        let n = stream.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            if let Ok(m) = stream.get_raw_message(seq).await {
                out.push(ledgerline_contract::v1::DeadLetter::decode(m.payload.as_ref()).unwrap());
            }
        }
        out
    }

    /// Waits (bounded by `timeout`) until the DLQ holds at least `n` dead letters; returns them.
    pub async fn wait_dead_letters(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<ledgerline_contract::v1::DeadLetter> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let dls = self.dead_letters().await;
            if dls.len() >= n {
                return dls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} dead letters, want {n}:\n{}",
                dls.len(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every fact on the XERO stream.
    pub async fn facts(&self) -> Vec<ledgerline_contract::v1::XeroFact> {
        use prost::Message as _;
        let mut stream = self.js.get_stream("XERO").await.unwrap();
        let n = stream.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            if let Ok(m) = stream.get_raw_message(seq).await
                && !m.subject.contains(".usage.")
                && !m.subject.contains(".connection.")
            {
                out.push(ledgerline_contract::v1::XeroFact::decode(m.payload.as_ref()).unwrap());
            }
        }
        out
    }

    /// Every usage alert on the XERO stream.
    pub async fn usage_alerts(&self) -> Vec<ledgerline_contract::v1::XeroUsageAlert> {
        use prost::Message as _;
        let mut stream = self.js.get_stream("XERO").await.unwrap();
        let n = stream.info().await.unwrap().state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            if let Ok(m) = stream.get_raw_message(seq).await
                && m.subject.contains(".usage.")
            {
                out.push(
                    ledgerline_contract::v1::XeroUsageAlert::decode(m.payload.as_ref()).unwrap(),
                );
            }
        }
        out
    }

    /// The writer's ledger entry of an order of store `main`, as JSON.
    pub async fn ledger(&self, order_id: &str) -> Option<Value> {
        let kv = self.js.get_key_value("ledger").await.ok()?;
        let key = format!("{}.main.{order_id}", self.sandbox.tenant);
        let v = kv.get(key).await.ok()??;
        serde_json::from_slice(&v).ok()
    }

    pub async fn metrics(&self) -> String {
        let addr = self.writer.as_ref().unwrap().addr().to_owned();
        tokio::task::spawn_blocking(move || {
            ledgerline_testkit::http_get(&addr, "/metrics")
                .map(|r| r.1)
                .unwrap_or_default()
        })
        .await
        .unwrap()
    }
}

pub fn m(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.into(),
        currency: "NZD".into(),
    })
}

pub fn line(kind: LineKind, desc: &str, qty: &str, unit: &str, code: &str) -> LineItem {
    let q = Decimal::from_str(qty).unwrap();
    let u = Decimal::from_str(unit).unwrap();
    let rate = match code {
        "GST15" => Decimal::from_str("0.15").unwrap(),
        "GST10" => Decimal::from_str("0.10").unwrap(),
        _ => Decimal::ZERO,
    };
    let total = (q * u).round_dp(2);
    LineItem {
        kind: kind as i32,
        description: desc.into(),
        sku: desc.to_ascii_uppercase(),
        quantity: qty.into(),
        unit_price: m(unit),
        tax_amount: m(&(total * rate).round_dp(2).to_string()),
        tax_rate: rate.to_string(),
        source_tax_code: code.into(),
        taxable: true,
        line_total: m(&total.to_string()),
        ..Default::default()
    }
}

pub fn customer(first: &str, last: &str, email: &str) -> Customer {
    Customer {
        identity_key: email.to_ascii_lowercase(),
        email: email.into(),
        first_name: first.into(),
        last_name: last.into(),
        is_guest: true,
        active: true,
        ..Default::default()
    }
}

/// An order whose total is computed on the invoice total (as many stores do), so Xero's
/// per-line rounding may differ from it.
pub fn order(
    number: &str,
    version: u64,
    status: OrderStatus,
    lines: Vec<LineItem>,
    cust: Customer,
) -> Order {
    let net: Decimal = lines
        .iter()
        .map(|l| Decimal::from_str(&l.line_total.as_ref().unwrap().amount).unwrap())
        .sum();
    let tax = lines
        .iter()
        .map(|l| {
            Decimal::from_str(&l.line_total.as_ref().unwrap().amount).unwrap()
                * Decimal::from_str(&l.tax_rate).unwrap()
        })
        .sum::<Decimal>()
        .round_dp(2);
    Order {
        id: format!("id-{number}"),
        number: number.into(),
        store: "main".into(),
        version,
        status: status as i32,
        currency: "NZD".into(),
        tax_included: false,
        customer: Some(cust),
        lines,
        totals: Some(Totals {
            subtotal: m(&net.to_string()),
            tax: m(&tax.to_string()),
            total: m(&(net + tax).to_string()),
            ..Default::default()
        }),
        created_at: "2026-11-20T10:00:00+13:00".into(),
        updated_at: "2026-11-20T10:00:00+13:00".into(),
        ..Default::default()
    }
}

pub fn total_of(o: &Order) -> Decimal {
    Decimal::from_str(&o.totals.as_ref().unwrap().total.as_ref().unwrap().amount).unwrap()
}

pub fn pay(o: &mut Order, id: &str, amount: Decimal) {
    o.payments.push(Payment {
        id: id.into(),
        amount: m(&amount.to_string()),
        method: "card".into(),
        received_at: "2026-11-21T09:00:00+13:00".into(),
        received: true,
        status: "received".into(),
        ..Default::default()
    });
}

pub fn event(o: &Order, ty: OrderEventType, event_id: &str) -> OrderEvent {
    OrderEvent {
        meta: Some(EventMeta {
            event_id: event_id.into(),
            source_event_id: event_id.into(),
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

pub fn refund_event(
    o: &Order,
    id: &str,
    rma: &str,
    lines: Vec<LineItem>,
    amount: Decimal,
) -> RefundEvent {
    RefundEvent {
        meta: Some(EventMeta {
            event_id: format!("refund-{id}"),
            source_event_id: format!("refund-{id}"),
            mapping_revision: "rev-1".into(),
            store: "main".into(),
            ..Default::default()
        }),
        order_id: o.id.clone(),
        order_number: o.number.clone(),
        order_version: o.version,
        refund: Some(Refund {
            id: id.into(),
            return_key: rma.into(),
            amount: m(&amount.to_string()),
            method: "card".into(),
            refunded_at: "2026-11-22T09:00:00+13:00".into(),
            lines,
            ..Default::default()
        }),
        currency: "NZD".into(),
        tax_included: false,
    }
}

/// A simple two-line order (product + shipping), GST 15 %.
pub fn simple(number: &str, email: &str) -> Order {
    order(
        number,
        1,
        OrderStatus::Confirmed,
        vec![
            line(LineKind::Product, "Widget", "2", "10.00", "GST15"),
            line(LineKind::Shipping, "Courier", "1", "5.00", "GST15"),
        ],
        customer("Pat", &format!("Buyer {number}"), email),
    )
}
