//! The whole pipeline on one machine, as child processes: what `scripts/demo.sh` runs and what
//! the end-to-end tests in `tests/` drive.
//!
//! [`Stack::start`] starts (or reuses) a nats-server, then xero-sandbox, webhook-ingest,
//! normalizer, xero-writer, the dead-letter service and the reconciler from the workspace's
//! target directory; [`Stack::send_orders`]
//! runs clarity-sim against it; [`Stack::wait_converged`] polls until Xero (the sandbox) ties
//! out against clarity-sim's ground truth, and says where it does not.

use anyhow::Context as _;
use ledgerline_platform::json::decimal;
use ledgerline_testkit::{NatsServer, ServiceProcess, find_workspace_binary, free_port};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The webhook secret both webhook-ingest and clarity-sim use when none is configured.
pub const DEMO_SECRET: &str = "whsec_bGVkZ2VybGluZS1kZW1vLXNlY3JldC0x";
const SANDBOX_ADMIN_TOKEN: &str = "sandbox-admin";
/// The key the sandbox signs its webhooks to the reconciler with, in this demo.
const XERO_WEBHOOK_KEY: &str = "ledgerline-demo-xero-webhook-key";

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Orders clarity-sim places.
    #[arg(long, default_value_t = 300)]
    pub orders: usize,
    /// Webhooks per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seed of the simulated store.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// clarity-sim fault modes.
    #[arg(long, default_value = "duplicates,reorder")]
    pub faults: String,
    /// Orders of each review case the store places (a new tax code, a sales channel Xero has
    /// no tracking option for): they wait in the review queue for a person (the operator page).
    #[arg(long, default_value_t = 1)]
    pub review_orders: usize,
    /// Use this nats-server (2.10+) instead of starting one.
    #[arg(long, env = "DEMO_NATS_URL")]
    pub nats_url: Option<String>,
    /// Give up waiting for Xero to tie out after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Extra arguments for xero-sandbox (space-separated), e.g. "--time-scale 60".
    #[arg(long, default_value = "")]
    pub sandbox_args: String,
    /// Extra environment for xero-writer, `KEY=VALUE` (repeatable), e.g. XERO_MINUTE_LIMIT=600.
    #[arg(long = "writer-env", value_name = "KEY=VALUE")]
    pub writer_env: Vec<String>,
    /// Extra environment for webhook-ingest, normalizer and xero-writer, `KEY=VALUE`
    /// (repeatable), e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 to export traces.
    #[arg(long = "service-env", value_name = "KEY=VALUE")]
    pub service_env: Vec<String>,
}

impl Options {
    /// Defaults for tests.
    pub fn small(orders: usize) -> Self {
        Self {
            orders,
            rate: 200,
            seed: 7,
            faults: "duplicates,reorder".into(),
            review_orders: 0,
            nats_url: None,
            timeout_secs: 300,
            sandbox_args: String::new(),
            writer_env: Vec::new(),
            service_env: Vec::new(),
        }
    }

    /// Xero's minute and day shortened `scale` times, in the sandbox and the writer alike (a
    /// writer on a different scale from its Xero would be throttled or idle).
    pub fn at_time_scale(mut self, scale: u32) -> Self {
        self.sandbox_args = format!("--time-scale {scale}");
        self.writer_env = vec![format!("XERO_TIME_SCALE={scale}")];
        self
    }
}

/// The running pipeline. Dropping it stops every process it started.
#[derive(Debug)]
pub struct Stack {
    /// The nats-server, when this stack started it.
    pub nats: Option<NatsServer>,
    /// Where NATS is.
    pub nats_url: String,
    /// The local Xero.
    pub sandbox: ServiceProcess,
    /// The front door.
    pub ingest: ServiceProcess,
    /// RAW → canonical events, when built.
    pub normalizer: Option<ServiceProcess>,
    /// Canonical events → Xero, when built.
    pub writer: Option<ServiceProcess>,
    /// The review queue and the operator page, when built.
    pub dead_letter: Option<ServiceProcess>,
    /// Both sides per order, drift, and the reconciliation report, when built.
    pub reconciler: Option<ServiceProcess>,
    /// The operator token of this run (the page and the dead-letter API take it).
    pub operator_token: String,
    /// Services not built yet.
    pub missing: Vec<&'static str>,
    tenant: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    opts: Options,
    recon_addr: String,
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    find_workspace_binary(name)
        .with_context(|| format!("{name} is not built: run `cargo build --workspace --bins`"))
}

impl Stack {
    /// Starts everything and waits until each service is ready.
    pub async fn start(opts: &Options) -> anyhow::Result<Self> {
        ledgerline_platform::tls::install_crypto_provider();
        let (nats, nats_url) = match &opts.nats_url {
            Some(url) => (None, url.clone()),
            None => {
                let n = tokio::task::spawn_blocking(NatsServer::start).await?;
                let url = n.url();
                (Some(n), url)
            }
        };
        // The reconciler's address is chosen first: the sandbox sends Xero's webhooks there,
        // and the operator page links to its report.
        let recon_bin = find_workspace_binary("reconciler");
        let recon_addr = format!("127.0.0.1:{}", free_port());
        let hook_url = format!("http://{recon_addr}/webhooks/xero");
        let mut sandbox_args: Vec<&str> = opts.sandbox_args.split_whitespace().collect();
        if recon_bin.is_some() {
            sandbox_args.extend([
                "--webhook-url",
                &hook_url,
                "--webhook-key",
                XERO_WEBHOOK_KEY,
            ]);
        }
        let sandbox = ServiceProcess::start(&binary("xero-sandbox")?, &sandbox_args, &[]);
        // A token for this run only: the page is on loopback, and the token is printed.
        let operator_token = format!("demo-{}", uuid::Uuid::new_v4().simple());
        let services = Services::spawn(
            opts,
            &nats_url,
            &sandbox.base_url(),
            &recon_addr,
            &operator_token,
        )?;
        let http = ledgerline_platform::tls::http_client("ledgerline-demo")?;
        let tenant = first_tenant(&http, &sandbox.base_url()).await?;
        let dir = tempfile::tempdir()?;
        Ok(Self {
            nats,
            nats_url,
            sandbox,
            ingest: services.ingest,
            normalizer: services.normalizer,
            writer: services.writer,
            dead_letter: services.dead_letter,
            reconciler: services.reconciler,
            operator_token,
            missing: services.missing,
            tenant,
            http,
            dir,
            opts: opts.clone(),
            recon_addr,
        })
    }

    /// Stops every service that uses NATS (SIGKILL), leaving NATS and the sandbox running: for
    /// work on NATS itself (a backup and restore).
    pub fn stop_services(&mut self) {
        self.ingest.kill();
        for p in [
            &mut self.normalizer,
            &mut self.writer,
            &mut self.dead_letter,
            &mut self.reconciler,
        ]
        .into_iter()
        .flatten()
        {
            p.kill();
        }
    }

    /// Starts the services again as [`Stack::start`] did (webhook-ingest on a new port).
    pub fn start_services(&mut self) -> anyhow::Result<()> {
        let s = Services::spawn(
            &self.opts,
            &self.nats_url,
            &self.sandbox.base_url(),
            &self.recon_addr,
            &self.operator_token,
        )?;
        self.ingest = s.ingest;
        self.normalizer = s.normalizer;
        self.writer = s.writer;
        self.dead_letter = s.dead_letter;
        self.reconciler = s.reconciler;
        Ok(())
    }

    fn start_writer(
        bin: &std::path::Path,
        nats_url: &str,
        sandbox: &str,
        extra: &[String],
    ) -> ServiceProcess {
        let api = format!("{sandbox}/api.xro/2.0");
        let mut env = vec![
            ("NATS_URL", nats_url),
            ("XERO_IDENTITY_URL", sandbox),
            ("XERO_API_URL", api.as_str()),
            // A tracking value the organisation lacks is held for a person, not left off.
            ("WRITER_UNKNOWN_TRACKING", "review"),
        ];
        env.extend(extra.iter().filter_map(|kv| kv.split_once('=')));
        ServiceProcess::start(bin, &[], &env)
    }

    /// The reconciler on `addr`, reading Xero like the writer (its `XERO_*` settings from
    /// `extra` too), with the run's operator token for its API and report.
    fn start_reconciler(
        bin: &std::path::Path,
        addr: &str,
        nats_url: &str,
        sandbox: &str,
        token: &str,
        dead_letter: Option<String>,
        extra: &[String],
    ) -> ServiceProcess {
        let api = format!("{sandbox}/api.xro/2.0");
        let mut env = vec![
            ("NATS_URL", nats_url),
            ("XERO_IDENTITY_URL", sandbox),
            ("XERO_API_URL", api.as_str()),
            ("XERO_WEBHOOK_KEY", XERO_WEBHOOK_KEY),
            ("RECON_API_TOKEN", token),
        ];
        if let Some(url) = dead_letter.as_deref() {
            env.push(("RECON_DEAD_LETTER_URL", url));
        }
        env.extend(
            extra
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| !k.starts_with("WRITER_")),
        );
        let mut p = ServiceProcess::spawn_at(bin, addr, &[], &env);
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Kills the writer with SIGKILL (a crash); [`Stack::restart_writer`] starts a new one.
    pub fn kill_writer(&mut self) {
        if let Some(mut w) = self.writer.take() {
            w.kill();
        }
    }

    /// Kills the writer and starts a new one (a crash and a restart).
    pub fn restart_writer(&mut self, extra_env: &[String]) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.kill();
        }
        let bin = binary("xero-writer")?;
        self.writer = Some(Self::start_writer(
            &bin,
            &self.nats_url,
            &self.sandbox.base_url(),
            extra_env,
        ));
        Ok(())
    }

    /// Where things are, for the operator.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "Ledgerline demo\n  NATS          {}\n  xero-sandbox  {} (tenant {})\n  webhook-ingest {}/webhooks/clarity/main\n",
            self.nats_url,
            self.sandbox.base_url(),
            self.tenant,
            self.ingest.base_url()
        );
        if let Some(n) = &self.normalizer {
            s.push_str(&format!("  normalizer    {}/metrics\n", n.base_url()));
        }
        if let Some(w) = &self.writer {
            s.push_str(&format!("  xero-writer   {}/metrics\n", w.base_url()));
        }
        if let Some(url) = self.page_url() {
            s.push_str(&format!(
                "  operator page {url} (sign in with the token {})\n",
                self.operator_token
            ));
        }
        if let Some(url) = self.report_url() {
            s.push_str(&format!("  reconciliation report {url} (the same token)\n"));
        }
        for m in &self.missing {
            s.push_str(&format!("  {m:<13} not built yet: events stop before it\n"));
        }
        s
    }

    /// The operator page (the review queue), when the dead-letter service runs.
    pub fn page_url(&self) -> Option<String> {
        self.dead_letter
            .as_ref()
            .map(|d| format!("{}/ui", d.base_url()))
    }

    /// The HTTP client the stack uses.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The sandbox tenant the writer writes to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The reconciliation report's page, when the reconciler runs.
    pub fn report_url(&self) -> Option<String> {
        self.reconciler
            .as_ref()
            .map(|r| format!("{}/report", r.base_url()))
    }

    /// The reconciliation report over the days `truth`'s orders were placed on (the
    /// organisation's days: a day either side of their UTC dates), as the reconciler's JSON.
    pub async fn reconciliation(&self, truth: &GroundTruth) -> anyhow::Result<Reconciliation> {
        let r = self
            .reconciler
            .as_ref()
            .context("the reconciler is not built")?;
        let (from, to) = truth.days().context("no orders")?;
        let (from, to) = (from.pred_opt().unwrap_or(from), to.succ_opt().unwrap_or(to));
        let resp = self
            .http
            .get(format!("{}/report", r.base_url()))
            .query(&[
                ("store", "main"),
                ("from", &from.to_string()),
                ("to", &to.to_string()),
            ])
            .bearer_auth(&self.operator_token)
            .send()
            .await?
            .error_for_status()?;
        serde_json::from_slice(&resp.bytes().await?).context("GET /report")
    }

    /// The order numbers with open entries in the review queue (nothing without the
    /// dead-letter service).
    pub async fn in_review(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let Some(d) = &self.dead_letter else {
            return Ok(Default::default());
        };
        let resp = self
            .http
            .get(format!("{}/v1/entries?status=open&limit=500", d.base_url()))
            .bearer_auth(&self.operator_token)
            .send()
            .await?
            .error_for_status()?;
        let page: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
        Ok(page["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["order_number"].as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Runs clarity-sim to completion against webhook-ingest and returns its ground truth.
    pub async fn send_orders(&self, opts: &Options) -> anyhow::Result<GroundTruth> {
        self.sender(opts).await
    }

    /// The load of [`Stack::send_orders`] as a future that borrows nothing from the stack, so a
    /// test can spawn it and crash or restart services while the orders flow.
    pub fn sender(
        &self,
        opts: &Options,
    ) -> impl std::future::Future<Output = anyhow::Result<GroundTruth>> + Send + 'static {
        let truth_path = self.dir.path().join("truth.json");
        let target = format!("{}/webhooks/clarity/main", self.ingest.base_url());
        let opts = opts.clone();
        async move {
            let out = tokio::process::Command::new(binary("clarity-sim")?)
                .args([
                    "send",
                    "--target",
                    &target,
                    "--store",
                    "main",
                    "--secret",
                    DEMO_SECRET,
                ])
                .args([
                    "--orders",
                    &opts.orders.to_string(),
                    "--rate",
                    &opts.rate.to_string(),
                ])
                .args([
                    "--seed",
                    &opts.seed.to_string(),
                    "--time-scale",
                    "0.01",
                    "--concurrency",
                    "8",
                ])
                .args(if opts.faults.is_empty() {
                    vec![]
                } else {
                    vec!["--faults", opts.faults.as_str()]
                })
                .args(["--review-orders", &opts.review_orders.to_string()])
                .arg("--truth-out")
                .arg(&truth_path)
                .stdin(std::process::Stdio::null())
                .output()
                .await?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            // The JSON report, then the one-line summary for people ("sent N events: ..."),
            // which follows the report on stdout.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let summary = stdout
                .lines()
                .chain(stderr.lines())
                .rfind(|l| l.starts_with("sent "))
                .unwrap_or("(no summary)");
            println!("clarity-sim: {summary}");
            anyhow::ensure!(
                out.status.success(),
                "clarity-sim failed:\n{stdout}\n{stderr}"
            );
            let text = std::fs::read_to_string(&truth_path)?;
            Ok(serde_json::from_str(&text)?)
        }
    }

    /// Current counts across the pipeline.
    pub async fn progress(&self) -> anyhow::Result<Progress> {
        let client = async_nats::connect(&self.nats_url).await?;
        let js = async_nats::jetstream::new(client);
        let count = |name: &'static str| {
            let js = js.clone();
            async move {
                match js.get_stream(name).await {
                    Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                    Err(_) => 0,
                }
            }
        };
        let received = count("RAW").await;
        let normalized = count("ORDERS").await;
        let in_review = count("DLQ").await;
        let docs = self.documents().await?;
        let invoices = docs.invoices.iter().filter(|i| i.kind == "ACCREC");
        let mut p = Progress {
            received,
            normalized,
            in_review,
            ..Default::default()
        };
        for i in invoices {
            match i.status.as_str() {
                "VOIDED" | "DELETED" => p.voided += 1,
                "PAID" => {
                    p.invoiced += 1;
                    p.paid += 1
                }
                _ => p.invoiced += 1,
            }
        }
        p.credit_notes = docs
            .credit_notes
            .iter()
            .filter(|c| c.status != "VOIDED" && c.status != "DELETED")
            .count() as u64;
        Ok(p)
    }

    /// The dead letters waiting for review: `(subject, error)`, oldest first.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<(String, String)>> {
        use futures::StreamExt;
        use prost::Message;
        let client = async_nats::connect(&self.nats_url).await?;
        let js = async_nats::jetstream::new(client);
        let Ok(stream) = js.get_stream("DLQ").await else {
            return Ok(vec![]);
        };
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await?;
        let pending = consumer.cached_info().num_pending as usize;
        let mut out = Vec::new();
        if pending == 0 {
            return Ok(out);
        }
        let mut msgs = consumer.messages().await?.take(pending);
        while let Some(m) = msgs.next().await {
            let m = m?;
            let error = ledgerline_contract::v1::DeadLetter::decode(m.payload.clone())
                .map(|d| format!("{} ({}): {}", d.entity_key, d.original_subject, d.error))
                .unwrap_or_else(|e| format!("undecodable dead letter: {e}"));
            out.push((m.subject.to_string(), error));
        }
        Ok(out)
    }

    /// The Xero calls the sandbox answered for the tenant, by endpoint (admin read).
    pub async fn xero_calls(&self) -> anyhow::Result<XeroCalls> {
        let resp = self
            .http
            .get(format!("{}/admin/counters", self.sandbox.base_url()))
            .bearer_auth(SANDBOX_ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        let counters: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
        let mut by_endpoint = std::collections::BTreeMap::new();
        if let Some(calls) = counters["calls"].as_object() {
            for (endpoint, tenants) in calls {
                let n = tenants[self.tenant.as_str()].as_u64().unwrap_or(0);
                if n > 0 {
                    let bytes = counters["egress_by_endpoint"][endpoint][self.tenant.as_str()]
                        .as_u64()
                        .unwrap_or(0);
                    by_endpoint.insert(endpoint.clone(), (n, bytes));
                }
            }
        }
        Ok(XeroCalls {
            by_endpoint,
            throttled: counters["throttled"].as_u64().unwrap_or(0),
        })
    }

    /// Every document in the sandbox's tenant (admin read: spends no API budget).
    pub async fn documents(&self) -> anyhow::Result<Documents> {
        let url = format!(
            "{}/admin/tenants/{}/documents",
            self.sandbox.base_url(),
            self.tenant
        );
        let resp = self
            .http
            .get(url)
            .bearer_auth(SANDBOX_ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(serde_json::from_slice(&resp.bytes().await?)?)
    }

    /// Polls until Xero ties out against `truth` or `timeout` passes; `report` sees progress
    /// about once a second.
    pub async fn wait_converged(
        &self,
        truth: &GroundTruth,
        timeout: Duration,
        mut report: impl FnMut(&Progress),
    ) -> anyhow::Result<TieOut> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_report = tokio::time::Instant::now() - Duration::from_secs(2);
        loop {
            let held = self.in_review().await?;
            let tie = tie_out(truth, &self.documents().await?, &held);
            if tie.ok() || tokio::time::Instant::now() >= deadline || !self.missing.is_empty() {
                report(&self.progress().await?);
                return Ok(tie);
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                report(&self.progress().await?);
                last_report = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The services that use NATS, as [`Stack`] starts them.
struct Services {
    ingest: ServiceProcess,
    normalizer: Option<ServiceProcess>,
    writer: Option<ServiceProcess>,
    dead_letter: Option<ServiceProcess>,
    reconciler: Option<ServiceProcess>,
    missing: Vec<&'static str>,
}

impl Services {
    fn spawn(
        opts: &Options,
        nats_url: &str,
        sandbox: &str,
        recon_addr: &str,
        operator_token: &str,
    ) -> anyhow::Result<Self> {
        let mut service_env = vec![("NATS_URL", nats_url)];
        service_env.extend(opts.service_env.iter().filter_map(|kv| kv.split_once('=')));
        let xero_env = [opts.service_env.clone(), opts.writer_env.clone()].concat();
        let ingest = ServiceProcess::start(&binary("webhook-ingest")?, &[], &service_env);
        let mut missing = Vec::new();
        // A service not built yet is left out and named, and events stop before it.
        let mut built = |name: &'static str| {
            let bin = find_workspace_binary(name);
            if bin.is_none() {
                missing.push(name);
            }
            bin
        };
        let normalizer =
            built("normalizer").map(|bin| ServiceProcess::start(&bin, &[], &service_env));
        let writer =
            built("xero-writer").map(|bin| Stack::start_writer(&bin, nats_url, sandbox, &xero_env));
        let recon_bin = built("reconciler");
        let dead_letter = built("dead-letter").map(|bin| {
            let tokens = format!("operator:{operator_token}");
            let recon_url = format!("http://{recon_addr}");
            let mut env = service_env.clone();
            env.push(("DEAD_LETTER_TOKENS", tokens.as_str()));
            if recon_bin.is_some() {
                env.push(("DEAD_LETTER_RECONCILER_URL", recon_url.as_str()));
            }
            ServiceProcess::start(&bin, &[], &env)
        });
        let reconciler = recon_bin.map(|bin| {
            Stack::start_reconciler(
                &bin,
                recon_addr,
                nats_url,
                sandbox,
                operator_token,
                dead_letter.as_ref().map(ServiceProcess::base_url),
                &xero_env,
            )
        });
        Ok(Self {
            ingest,
            normalizer,
            writer,
            dead_letter,
            reconciler,
            missing,
        })
    }
}

async fn first_tenant(http: &reqwest::Client, sandbox: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Tenant {
        #[serde(alias = "TenantId", alias = "tenantId", alias = "tenant_id")]
        id: String,
    }
    let resp = http
        .get(format!("{sandbox}/admin/tenants"))
        .bearer_auth(SANDBOX_ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?;
    let tenants: Vec<Tenant> =
        serde_json::from_slice(&resp.bytes().await?).context("GET /admin/tenants")?;
    tenants
        .into_iter()
        .next()
        .map(|t| t.id)
        .context("the sandbox has no tenant")
}

/// Live counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Webhooks stored in RAW.
    pub received: u64,
    /// Canonical order events in ORDERS.
    pub normalized: u64,
    /// ACCREC invoices in Xero that are not voided.
    pub invoiced: u64,
    /// ... of which PAID.
    pub paid: u64,
    /// Voided invoices.
    pub voided: u64,
    /// Credit notes.
    pub credit_notes: u64,
    /// Dead letters waiting for review.
    pub in_review: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {:>5} | normalized {:>5} | invoiced {:>5} | paid {:>5} | voided {:>4} | credit notes {:>4} | in review {:>4}",
            self.received,
            self.normalized,
            self.invoiced,
            self.paid,
            self.voided,
            self.credit_notes,
            self.in_review
        )
    }
}

/// clarity-sim's ground truth (format `clarity-sim/ground-truth/v1`), the parts tie-out needs.
#[derive(Debug, Clone, Deserialize)]
pub struct GroundTruth {
    /// Every order at its final version.
    pub orders: Vec<TruthOrder>,
    /// What Xero must add up to, per currency.
    pub per_currency: BTreeMap<String, TruthCurrency>,
}

impl GroundTruth {
    /// The first and last UTC dates orders were placed on.
    pub fn days(&self) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        let min = self.orders.iter().map(|o| o.created).min()?;
        let max = self.orders.iter().map(|o| o.created).max()?;
        Some((min.date_naive(), max.date_naive()))
    }
}

/// The reconciliation report, as much of the reconciler's JSON as the demo shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Reconciliation {
    /// Nothing unexplained, and no open finding.
    pub ties_out: bool,
    /// Orders in the range.
    pub orders: u64,
    /// The organisation's timezone the days are in.
    pub timezone: String,
    /// The whole range, per currency.
    pub currencies: Vec<ReconciliationLine>,
    /// Orders with an unexplained difference.
    pub unexplained: Vec<serde_json::Value>,
    /// Orders waiting in the review queue.
    pub held: Vec<serde_json::Value>,
}

/// One currency's totals over the range.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconciliationLine {
    /// ISO 4217.
    pub currency: String,
    /// Orders placed.
    pub orders: u64,
    /// Order totals.
    #[serde(with = "decimal")]
    pub gross: Decimal,
    /// Xero's side.
    pub xero: ReconciliationXero,
    /// What no cause explains.
    #[serde(with = "decimal")]
    pub unexplained: Decimal,
    /// The differences explained, cause by cause.
    pub explained: Vec<serde_json::Value>,
}

/// Xero's side of a [`ReconciliationLine`].
#[derive(Debug, Clone, Deserialize)]
pub struct ReconciliationXero {
    /// Invoice totals.
    #[serde(with = "decimal")]
    pub invoiced: Decimal,
    /// Payments per account code.
    pub payments: BTreeMap<String, Decimal>,
    /// Refunds paid out per account code.
    #[serde(default)]
    pub refunds: BTreeMap<String, Decimal>,
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Reconciliation report ({} orders, days in {}): {}",
            self.orders,
            self.timezone,
            if self.ties_out {
                "ties out, every difference explained"
            } else {
                "DOES NOT TIE OUT"
            }
        )?;
        for l in &self.currencies {
            let payments: Vec<String> = l
                .xero
                .payments
                .iter()
                .map(|(account, amount)| format!("{amount} to {account}"))
                .chain(
                    l.xero
                        .refunds
                        .iter()
                        .map(|(account, amount)| format!("{amount} refunded from {account}")),
                )
                .collect();
            writeln!(
                f,
                "  {} {:>4} orders | store {:>12} | Xero invoiced {:>12} | paid {} | {} explained | unexplained {}",
                l.currency,
                l.orders,
                l.gross,
                l.xero.invoiced,
                if payments.is_empty() {
                    "nothing".into()
                } else {
                    payments.join(", ")
                },
                l.explained.len(),
                l.unexplained
            )?;
        }
        if !self.held.is_empty() {
            writeln!(f, "  {} orders wait in the review queue", self.held.len())?;
        }
        Ok(())
    }
}

/// One order's final state.
#[derive(Debug, Clone, Deserialize)]
pub struct TruthOrder {
    /// Order number (e.g. SO-001042).
    pub number: String,
    /// When it was placed.
    pub created: chrono::DateTime<chrono::Utc>,
    /// Whether it was voided.
    pub voided: bool,
    /// ISO 4217.
    pub currency: String,
    /// Authoritative totals.
    pub totals: TruthTotals,
    /// Received payments.
    #[serde(with = "decimal")]
    pub amount_paid: Decimal,
    /// Σ its return totals.
    #[serde(with = "decimal", default)]
    pub credited: Decimal,
}

/// The order's `Totals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TruthTotals {
    /// What the customer pays.
    #[serde(with = "decimal")]
    pub total: Decimal,
    /// Tax.
    #[serde(with = "decimal")]
    pub tax: Decimal,
}

/// Per-currency sums.
#[derive(Debug, Clone, Deserialize)]
pub struct TruthCurrency {
    /// Σ Total of orders not voided.
    #[serde(with = "decimal")]
    pub invoiced_total: Decimal,
    /// Σ payments on them.
    #[serde(with = "decimal")]
    pub paid: Decimal,
    /// Σ return totals.
    #[serde(with = "decimal")]
    pub credited: Decimal,
}

/// The sandbox's documents (admin read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Documents {
    /// Invoices (ACCREC and ACCPAY).
    pub invoices: Vec<Invoice>,
    /// Credit notes.
    #[serde(default)]
    pub credit_notes: Vec<CreditNote>,
}

/// An invoice as Xero shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    /// ACCREC or ACCPAY.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Our deterministic number.
    #[serde(default)]
    pub invoice_number: String,
    /// Reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// DRAFT, AUTHORISED, PAID, VOIDED, DELETED.
    pub status: String,
    /// Currency.
    #[serde(default)]
    pub currency_code: String,
    /// Total as Xero computed it.
    #[serde(with = "decimal")]
    pub total: Decimal,
    /// Paid so far.
    #[serde(default, with = "ledgerline_platform::json::opt_decimal")]
    pub amount_paid: Option<Decimal>,
}

/// A credit note as Xero shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditNote {
    /// Status.
    pub status: String,
    /// Currency.
    #[serde(default)]
    pub currency_code: String,
    /// Total.
    #[serde(with = "decimal")]
    pub total: Decimal,
    /// CreditNoteNumber.
    #[serde(default)]
    pub credit_note_number: String,
    /// Credit neither allocated nor paid back.
    #[serde(with = "decimal", default)]
    pub remaining_credit: Decimal,
}

/// How Xero compares with the store.
#[derive(Debug, Clone, Default)]
pub struct TieOut {
    /// Orders the store has.
    pub orders: usize,
    /// Orders whose invoice matches (exists once, right total and status).
    pub matched: usize,
    /// What does not match, one line each (at most 20 kept).
    pub problems: Vec<String>,
    /// Per currency: (store's, Xero's) invoiced, paid, credited.
    pub currencies: BTreeMap<String, [(Decimal, Decimal); 3]>,
    /// Orders held in the review queue, left out of the comparison (their totals too).
    pub held: Vec<String>,
}

impl TieOut {
    /// True when every order not held in review, and every currency total without them,
    /// matches.
    pub fn ok(&self) -> bool {
        self.orders > 0 && self.matched + self.held.len() == self.orders && self.problems.is_empty()
    }
}

impl fmt::Display for TieOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Tie-out: {}/{} orders match in Xero{}",
            self.matched,
            self.orders - self.held.len(),
            if self.held.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} more held in the review queue: {})",
                    self.held.len(),
                    self.held.join(", ")
                )
            }
        )?;
        writeln!(
            f,
            "{:<5} {:>14} {:>14} {:>12} {:>12} {:>10} {:>10}",
            "ccy",
            "store invoiced",
            "xero invoiced",
            "store paid",
            "xero paid",
            "credited",
            "xero cred"
        )?;
        for (c, [inv, paid, cred]) in &self.currencies {
            writeln!(
                f,
                "{c:<5} {:>14} {:>14} {:>12} {:>12} {:>10} {:>10}",
                inv.0, inv.1, paid.0, paid.1, cred.0, cred.1
            )?;
        }
        for p in &self.problems {
            writeln!(f, "  ✗ {p}")?;
        }
        write!(
            f,
            "{}",
            if self.ok() {
                "All totals tie out to the cent."
            } else {
                "Not tied out."
            }
        )
    }
}

/// Compares Xero's documents with the store's ground truth, leaving out the orders `held` in
/// the review queue (by number) that Xero has no invoice for yet, and their totals.
pub fn tie_out(
    truth: &GroundTruth,
    docs: &Documents,
    held: &std::collections::BTreeSet<String>,
) -> TieOut {
    let mut t = TieOut {
        orders: truth.orders.len(),
        ..Default::default()
    };
    let invoiced = |number: &str| {
        docs.invoices.iter().any(|i| {
            i.kind == "ACCREC" && i.status != "DELETED" && i.invoice_number.contains(number)
        })
    };
    let held: Vec<&TruthOrder> = truth
        .orders
        .iter()
        .filter(|o| held.contains(&o.number) && !invoiced(&o.number))
        .collect();
    t.held = held.iter().map(|o| o.number.clone()).collect();
    let push = |t: &mut TieOut, p: String| {
        if t.problems.len() < 20 {
            t.problems.push(p);
        }
    };
    let accrec: Vec<&Invoice> = docs
        .invoices
        .iter()
        .filter(|i| i.kind == "ACCREC" && i.status != "DELETED")
        .collect();
    for o in truth
        .orders
        .iter()
        .filter(|o| !held.iter().any(|h| h.number == o.number))
    {
        let found: Vec<&&Invoice> = accrec
            .iter()
            .filter(|i| {
                i.invoice_number.contains(&o.number)
                    || i.reference
                        .as_deref()
                        .is_some_and(|r| r.contains(&o.number))
            })
            .collect();
        match found.as_slice() {
            // An order voided before the writer ever posted it needs nothing in Xero.
            [] if o.voided => t.matched += 1,
            [] => push(&mut t, format!("{}: no invoice", o.number)),
            [inv] => {
                let status_ok = if o.voided {
                    inv.status == "VOIDED"
                } else {
                    inv.status != "VOIDED"
                };
                let total_ok = o.voided || inv.total == o.totals.total;
                let paid_ok = o.voided || inv.amount_paid.unwrap_or_default() == o.amount_paid;
                if status_ok && total_ok && paid_ok {
                    t.matched += 1;
                } else {
                    push(
                        &mut t,
                        format!(
                            "{}: Xero {} total {} paid {} / store voided={} total {} paid {}",
                            o.number,
                            inv.status,
                            inv.total,
                            inv.amount_paid.unwrap_or_default(),
                            o.voided,
                            o.totals.total,
                            o.amount_paid
                        ),
                    );
                }
            }
            many => push(
                &mut t,
                format!("{}: {} invoices (duplicates)", o.number, many.len()),
            ),
        }
    }
    // Every refund is settled: its credit allocated to the invoice or paid back to the customer.
    for n in &docs.credit_notes {
        if n.status != "VOIDED" && n.status != "DELETED" && !n.remaining_credit.is_zero() {
            push(
                &mut t,
                format!(
                    "credit note {}: {} {} neither allocated nor refunded",
                    n.credit_note_number, n.remaining_credit, n.currency_code
                ),
            );
        }
    }
    for (c, want) in &truth.per_currency {
        let live = accrec
            .iter()
            .filter(|i| &i.currency_code == c && i.status != "VOIDED");
        let (mut inv, mut paid) = (Decimal::ZERO, Decimal::ZERO);
        for i in live {
            inv += i.total;
            paid += i.amount_paid.unwrap_or_default();
        }
        let cred: Decimal = docs
            .credit_notes
            .iter()
            .filter(|n| &n.currency_code == c && n.status != "VOIDED" && n.status != "DELETED")
            .map(|n| n.total)
            .sum();
        // What the held orders would add, not in Xero yet.
        let (mut want_inv, mut want_paid, mut want_cred) =
            (want.invoiced_total, want.paid, want.credited);
        for o in held.iter().filter(|o| &o.currency == c) {
            if !o.voided {
                want_inv -= o.totals.total;
                want_paid -= o.amount_paid;
            }
            want_cred -= o.credited;
        }
        if inv != want_inv || paid != want_paid || cred != want_cred {
            push(&mut t, format!("{c}: totals differ"));
        }
        t.currencies.insert(
            c.clone(),
            [(want_inv, inv), (want_paid, paid), (want_cred, cred)],
        );
    }
    t
}

/// The Xero calls of a run, as the sandbox counted them.
#[derive(Debug, Clone, Default)]
pub struct XeroCalls {
    /// `METHOD /resource` → (calls, response bytes).
    pub by_endpoint: std::collections::BTreeMap<String, (u64, u64)>,
    /// Calls answered 429.
    pub throttled: u64,
}

impl XeroCalls {
    /// Every call.
    pub fn total(&self) -> u64 {
        self.by_endpoint.values().map(|(n, _)| n).sum()
    }

    /// Every response byte (egress, as Xero meters it from March 2026).
    pub fn egress(&self) -> u64 {
        self.by_endpoint.values().map(|(_, b)| b).sum()
    }

    /// Calls to contact endpoints.
    pub fn contacts(&self) -> u64 {
        self.by_endpoint
            .iter()
            .filter(|(e, _)| e.contains("/contacts"))
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// A table for people: the total, per order, and each endpoint; egress, and what 10,000
    /// such orders a day would cost in a month against Core's 10 GB.
    pub fn report(&self, orders: usize) -> String {
        let total = self.total();
        let per = |x: u64| {
            if orders == 0 {
                0.0
            } else {
                x as f64 / orders as f64
            }
        };
        let egress = self.egress();
        let mut s = format!(
            "Xero calls: {total} for {orders} orders ({:.2} per order; {} for contacts; {} answered 429)\n",
            per(total),
            self.contacts(),
            self.throttled
        );
        s.push_str(&format!(
            "Egress: {egress} bytes ({:.0} per order); 10,000 such orders a day: {:.2} GB a month (Core allows 10 GB)\n",
            per(egress),
            per(egress) * 10_000.0 * 30.0 / 1e9
        ));
        s.push_str("   calls     bytes  endpoint\n");
        for (endpoint, (n, bytes)) in &self.by_endpoint {
            s.push_str(&format!("  {n:>6}  {bytes:>8}  {endpoint}\n"));
        }
        s
    }
}
