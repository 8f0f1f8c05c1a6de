//! Starts an in-process sandbox on 127.0.0.1:0 and talks to it over real HTTP.

use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::str::FromStr;
use uuid::Uuid;
use xero_sandbox::Config;

pub const ADMIN: &str = "sandbox-admin";

pub struct TestSandbox {
    pub base: String,
    pub tenants: Vec<Uuid>,
    pub client: reqwest::Client,
    pub token: String,
    running: Option<xero_sandbox::RunningSandbox>,
}

/// Test defaults: generous limits so only the limit tests meet them.
pub fn config() -> Config {
    let mut c = Config::for_tests();
    c.minute_limit = 100_000;
    c.day_limit = 1_000_000;
    c.app_minute_limit = 1_000_000;
    c.concurrent_limit = 100;
    c
}

impl TestSandbox {
    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    pub async fn start_with(c: Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let running = xero_sandbox::spawn(c).await.unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut s = Self {
            base: running.base_url.clone(),
            tenants: running.tenant_ids.clone(),
            client,
            token: String::new(),
            running: Some(running),
        };
        s.token = s.client_credentials().await;
        s
    }

    /// Stops the server and waits for it (snapshot written).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    pub async fn client_credentials(&self) -> String {
        let r = self
            .client
            .post(format!("{}/connect/token", self.base))
            .basic_auth("ledgerline-sandbox", Some("sandbox-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api.xro/2.0{}", self.base, path)
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("xero-tenant-id", self.tenants[0].to_string())
            .header("accept", "application/json")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self.req(method, path).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .client
            .request(method, format!("{}/admin{}", self.base, path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn settings(&self, body: Value) -> Value {
        self.admin(reqwest::Method::POST, "/settings", body).await
    }

    pub async fn contact(&self, name: &str) -> String {
        let (s, v) = self
            .put("/Contacts", json!({"Contacts": [{"Name": name}]}))
            .await;
        assert_eq!(s, 200, "{v}");
        v["Contacts"][0]["ContactID"].as_str().unwrap().to_string()
    }

    /// Creates an AUTHORISED ACCREC invoice of `qty` × `unit` at 15% and returns it.
    pub async fn invoice(&self, contact_id: &str, unit: &str) -> Value {
        let (s, v) = self
            .put(
                "/Invoices",
                json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "Date": "2026-11-20",
                    "DueDate": "2026-12-20", "Status": "AUTHORISED",
                    "LineItems": [{"Description": "Widget", "Quantity": 1, "UnitAmount": dec(unit), "AccountCode": "200", "TaxType": "OUTPUT2"}]}]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["Invoices"][0].clone()
    }
}

/// A JSON number from decimal text, without floats.
pub fn dec(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// A JSON number as a decimal (from its text).
pub fn d(v: &Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap_or_else(|_| panic!("not a number: {v}"))
}

pub fn ds(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Polls `f` until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in {secs}s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
