use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context};
use ledgerline_contract::headers;
use ledgerline_testkit::{NatsServer, ServiceProcess, find_workspace_binary};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const OPERATOR: &str = "operator-token-0123456789";
pub const VIEWER: &str = "viewer-token-0123456789";
pub const OUTLET_VIEWER: &str = "outlet-viewer-token-0123";
pub const SANDBOX_ADMIN: &str = "sandbox-admin";
pub const WAIT: Duration = Duration::from_secs(60);

/// The service binary (`DEAD_LETTER_BIN` overrides it, e.g. with a profiler's wrapper).
pub fn binary() -> PathBuf {
    std::env::var_os("DEAD_LETTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dead-letter")))
}

fn workspace(name: &str) -> PathBuf {
    find_workspace_binary(name)
        .unwrap_or_else(|| panic!("{name} is not built: run `cargo build --workspace --bins`"))
}

/// The normalizer's golden inputs.
pub fn example(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../normalizer/tests/golden/inputs")
        .join(name);
    std::fs::read(p).expect("input exists")
}

/// A Clarity order body with another event id, order id and number, and a tax code on its
/// second item.
pub fn order(event: &str, id: u64, tax_code: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&example("err_unknown_tax_code.json")).unwrap();
    v["id"] = event.into();
    v["data"]["ID"] = id.into();
    v["data"]["CustomKey"] = format!("SO-{id:06}").into();
    v["data"]["SalesItems"][1]["ProductTaxCode"] = tax_code.into();
    serde_json::to_vec(&v).unwrap()
}

/// What a test runs beside the dead-letter service.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The normalizer, the writer and the sandbox.
    pub pipeline: bool,
    /// A mapping file for the normalizer, the writer and the dead-letter service.
    pub mapping: Option<String>,
    /// Extra environment for the dead-letter service.
    pub env: Vec<(String, String)>,
    /// Extra environment for the writer.
    pub writer_env: Vec<(String, String)>,
}

pub struct Stack {
    /// Kept so the server lives as long as the stack.
    pub _nats: NatsServer,
    pub sandbox: Option<ServiceProcess>,
    pub normalizer: Option<ServiceProcess>,
    pub writer: Option<ServiceProcess>,
    pub dl: ServiceProcess,
    pub js: Context,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(opts: Options) -> Self {
        ledgerline_platform::tls::install_crypto_provider();
        let nats = tokio::task::spawn_blocking(NatsServer::start)
            .await
            .unwrap();
        let url = nats.url();
        let dir = tempfile::tempdir().unwrap();
        let mapping = opts.mapping.as_ref().map(|m| {
            let p = dir.path().join("mapping.toml");
            std::fs::write(&p, m).unwrap();
            p.to_string_lossy().to_string()
        });
        let mut env: Vec<(&str, &str)> = vec![("NATS_URL", &url)];
        if let Some(m) = &mapping {
            env.push(("MAPPING_FILE", m));
        }
        let (mut sandbox, mut normalizer, mut writer) = (None, None, None);
        if opts.pipeline {
            let s = ServiceProcess::start(&workspace("xero-sandbox"), &[], &[]);
            let base = s.base_url();
            let api = format!("{base}/api.xro/2.0");
            let mut wenv = env.clone();
            wenv.extend([
                ("XERO_IDENTITY_URL", base.as_str()),
                ("XERO_API_URL", api.as_str()),
                ("WRITER_MAX_LINGER", "100ms"),
            ]);
            wenv.extend(
                opts.writer_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            normalizer = Some(ServiceProcess::start(
                &workspace("normalizer"),
                &["--mapping-poll", "100ms"],
                &env,
            ));
            writer = Some(ServiceProcess::start(&workspace("xero-writer"), &[], &wenv));
            sandbox = Some(s);
        }
        let tokens = format!("operator:{OPERATOR};viewer:{VIEWER};viewer:{OUTLET_VIEWER}:outlet");
        let mut denv = env.clone();
        denv.push(("DEAD_LETTER_TOKENS", &tokens));
        denv.extend(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let dl = ServiceProcess::start(&binary(), &[], &denv);
        let client = async_nats::connect(&url).await.unwrap();
        Self {
            _nats: nats,
            sandbox,
            normalizer,
            writer,
            dl,
            js: jetstream::new(client),
            http: ledgerline_platform::tls::http_client("test").unwrap(),
            _dir: dir,
        }
    }

    pub fn output(&self) -> String {
        let mut s = format!("--- dead-letter\n{}", self.dl.output());
        for (name, p) in [("normalizer", &self.normalizer), ("writer", &self.writer)] {
            if let Some(p) = p {
                s.push_str(&format!("--- {name}\n{}", p.output()));
            }
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.dl.base_url())
    }

    /// GET with a token; the status and the JSON body.
    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON with a token; the status and the JSON body.
    pub async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut r = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Issues with open entries.
    pub async fn issues(&self) -> Vec<Value> {
        let (s, v) = self.get(Some(OPERATOR), "/v1/issues").await;
        assert_eq!(s, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }

    pub async fn entry(&self, id: &str) -> Value {
        let (s, v) = self.get(Some(OPERATOR), &format!("/v1/entries/{id}")).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Stores a raw event in RAW the way webhook-ingest does.
    pub async fn publish_raw(&self, id: &str, topic: &str, body: Vec<u8>) {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, id);
        h.insert(headers::WEBHOOK_ID, id);
        h.insert(headers::CLARITY_TOPIC, topic);
        h.insert(headers::CLARITY_STORE, "main");
        h.insert(headers::ORIGIN, "webhook");
        h.insert(headers::SCHEMA, ledgerline_contract::RAW_CLARITY_SCHEMA);
        self.js
            .publish_with_headers(format!("raw.clarity.main.{topic}"), h, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    pub async fn count(&self, stream: &str) -> u64 {
        match self.js.get_stream(stream).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// The sandbox's first tenant's invoices.
    pub async fn invoices(&self) -> Vec<Value> {
        let base = self.sandbox.as_ref().expect("a sandbox").base_url();
        let tenants: Value = self
            .http
            .get(format!("{base}/admin/tenants"))
            .bearer_auth(SANDBOX_ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tenant = tenants[0]["tenant_id"].as_str().unwrap().to_owned();
        let docs: Value = self
            .http
            .get(format!("{base}/admin/tenants/{tenant}/documents"))
            .bearer_auth(SANDBOX_ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        docs["Invoices"].as_array().cloned().unwrap_or_default()
    }

    /// Invoices whose number or reference names `order_number`.
    pub async fn invoices_of(&self, order_number: &str) -> usize {
        self.invoices()
            .await
            .iter()
            .filter(|i| {
                i["InvoiceNumber"]
                    .as_str()
                    .unwrap_or("")
                    .contains(order_number)
                    || i["Reference"].as_str().unwrap_or("").contains(order_number)
            })
            .count()
    }

    /// True once every ORDERS consumer has nothing pending or unacked: the writer has handled
    /// everything published so far.
    pub async fn orders_settled(&self) -> bool {
        let Ok(stream) = self.js.get_stream("ORDERS").await else {
            return false;
        };
        let mut names = stream.consumer_names();
        let mut all = Vec::new();
        use futures::StreamExt;
        while let Some(Ok(n)) = names.next().await {
            all.push(n);
        }
        if all.is_empty() {
            return false;
        }
        for n in all {
            let Ok(mut c) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&n)
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
}

/// Polls `check` every 50 ms until true or `timeout`.
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stores a dead letter on DLQ as a stage would: `n` distinguishes otherwise equal ones.
pub async fn publish_dead_letter(js: &Context, store: &str, order: u64, fault_value: &str) {
    publish_dead_letter_at(js, false, store, order, fault_value, 0).await
}

/// [`publish_dead_letter`], from the writer's stage (`writer`): its replay republishes to
/// `orders.<store>.created`.
pub async fn publish_dead_letter_at(
    js: &Context,
    writer: bool,
    store: &str,
    order: u64,
    fault_value: &str,
    pad: usize,
) {
    use ledgerline_contract::v1::{ReasonClass, Stage, Suggestion};
    use ledgerline_platform::dead_letter::{DeadLetterBuilder, fault};
    let body = serde_json::json!({
        "id": format!("evt_{store}_{order}"),
        "type": "sales_order.created",
        "data": {
            "ID": order,
            "CustomKey": format!("SO-{order:06}"),
            "Version": 1,
            "UserContactEmail": format!("buyer{order}@example.co.nz"),
            "BillingContact": {"FirstName": "Aroha", "Address1": "12 Queen Street"},
            "Notes": ["x".repeat(pad)]
        }
    });
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, format!("evt_{store}_{order}").as_str());
    h.insert(headers::SCHEMA, ledgerline_contract::RAW_CLARITY_SCHEMA);
    h.insert(headers::CLARITY_STORE, store);
    let (stage, subject) = if writer {
        (Stage::XeroWriter, format!("orders.{store}.created"))
    } else {
        (
            Stage::Normalizer,
            format!("raw.clarity.{store}.sales_order.created"),
        )
    };
    let dl = DeadLetterBuilder::new(
        stage,
        ReasonClass::Mapping,
        format!("item {order}: tax code \"{fault_value}\" is not in the mapping's [tax_codes]"),
        &subject,
        &serde_json::to_vec(&body).unwrap(),
    )
    .headers(Some(&h))
    .origin("RAW", order)
    .store(store)
    .entity(&format!("{store}/{order}"))
    .fault(fault("unknown_tax_code", "tax_code", fault_value))
    .suggestions(vec![Suggestion {
        field: format!("tax_codes.{fault_value}"),
        suggested_value: "rate = \"0.15\", tax_type = \"OUTPUT2\"".into(),
        score: 0.9,
        reason: "the rate of GST15".into(),
        rule: format!("[tax_codes.\"{fault_value}\"]\nrate = \"0.15\"\ntax_type = \"OUTPUT2\"\n"),
        ..Default::default()
    }])
    .build();
    let mut dh = HeaderMap::new();
    dh.insert(headers::MSG_ID, dl.id.as_str());
    dh.insert(headers::SCHEMA, "ledgerline.v1.DeadLetter");
    use prost::Message;
    let dlq = if writer {
        "dlq.xero_writer.mapping"
    } else {
        "dlq.normalizer.mapping"
    };
    js.publish_with_headers(dlq, dh, dl.encode_to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Signs in with `token` and lands on the queue.
pub async fn sign_in(b: &ledgerline_testkit::browser::Browser, stack: &Stack, token: &str) {
    use fantoccini::Locator;
    let c = &b.client;
    c.goto(&stack.url("/ui")).await.unwrap();
    // Not signed in: the page asks for a token first.
    let url = c.current_url().await.unwrap();
    assert!(url.path().ends_with("/ui/login"), "{url}");
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("form.card button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui");
}
