//! The docker-compose cluster in real containers (ignored by default):
//!
//! - `compose_stack_...` (`.ci/run` runs it when `docker info` works, via
//!   `scripts/test-compose.sh`): images built here by `deploy/images.sh`, `docker-compose up`,
//!   every service healthy, 300 orders from clarity-sim (duplicates, reordering) with the writer
//!   and then NATS killed mid-load, a tie-out in the sandbox (nothing lost, nothing twice), and
//!   everything torn down, volumes included. Prints each phase's time.
//! - `cluster_...` (on request): the three-node NATS cluster, R3 streams; one node stopped and
//!   brought back, then the RAW stream's leader cut off the network and reconnected, while
//!   orders flow and a probe publishes to an R3 stream; prints what clients saw.
//!
//! `cargo nextest run -p ledgerline-tests --run-ignored only -E 'test(compose_)' --no-capture`
//! `cargo nextest run -p ledgerline-tests --run-ignored only -E 'test(cluster_)' --no-capture`

use ledgerline_demo::{Documents, GroundTruth, tie_out};
use ledgerline_testkit::{find_workspace_binary, free_port};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "compose-test-operator-token";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A compose project with its own name and host ports; `down -v` when dropped.
struct Project {
    name: String,
    env: BTreeMap<&'static str, String>,
    /// `-f` files after docker-compose.yml.
    extra: Vec<&'static str>,
}

impl Project {
    fn new() -> Self {
        Self::with_files(&[])
    }

    /// With the three-node NATS cluster (deploy/compose/cluster.yml).
    fn cluster() -> Self {
        let mut p = Self::with_files(&["deploy/compose/cluster.yml"]);
        for key in ["NATS2_PORT", "NATS3_PORT"] {
            p.env.insert(key, free_port().to_string());
        }
        p
    }

    fn with_files(extra: &[&'static str]) -> Self {
        let mut env = BTreeMap::new();
        for key in [
            "NATS_PORT",
            "NATS_MONITOR_PORT",
            "SANDBOX_PORT",
            "INGEST_PORT",
            "NORMALIZER_PORT",
            "WRITER_PORT",
            "DEAD_LETTER_PORT",
            "RECONCILER_PORT",
        ] {
            env.insert(key, free_port().to_string());
        }
        env.insert("LEDGERLINE_OPERATOR_TOKEN", TOKEN.into());
        // Xero's limits, on a minute of 3 s: 300 orders fit a few minutes.
        env.insert("XERO_TIME_SCALE", "20".into());
        Self {
            name: format!("llcompose{}", std::process::id()),
            env,
            extra: extra.to_vec(),
        }
    }

    fn files(&self) -> Vec<&'static str> {
        let mut args = vec!["-f", "docker-compose.yml"];
        for f in &self.extra {
            args.extend(["-f", f]);
        }
        args
    }

    fn port(&self, key: &str) -> &str {
        &self.env[key]
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("docker-compose")
            .current_dir(root())
            .args(["-p", &self.name])
            .args(self.files())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("docker-compose runs");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Health of every container of the project, by service.
    fn health(&self) -> BTreeMap<String, String> {
        let ids = self.compose(&["ps", "-q"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return BTreeMap::new();
        }
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{index .Config.Labels \"com.docker.compose.service\"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"])
            .args(&ids)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(s, h)| (s.to_owned(), h.to_owned()))
            .collect()
    }

    async fn wait_healthy(&self, services: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let h = self.health();
            if h.len() == services && h.values().all(|s| s == "healthy") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not healthy in {within:?}: {h:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn logs(&self) -> String {
        let out = Command::new("docker-compose")
            .current_dir(root())
            .args(["-p", &self.name])
            .args(self.files())
            .args(["logs", "--no-color", "--tail", "40"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .current_dir(root())
            .args(["-p", &self.name])
            .args(self.files())
            .args(["down", "-v", "--remove-orphans", "-t", "5"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output();
    }
}

fn phase(name: &str, started: Instant) -> Instant {
    eprintln!("PHASE {name}: {:.1} s", started.elapsed().as_secs_f64());
    Instant::now()
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// The images built (the base is cached between runs; the binaries are the ones the tests
/// built), the project up, every container healthy; prints both phases' times.
async fn bring_up(p: &Project, containers: usize) -> Instant {
    let t = Instant::now();
    let st = Command::new(root().join("deploy/images.sh"))
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success(), "deploy/images.sh failed");
    let t = phase("images", t);
    p.compose(&["up", "-d"]);
    p.wait_healthy(containers, Duration::from_secs(180)).await;
    phase(&format!("up and healthy ({containers} containers)"), t)
}

/// The store sending its orders to ingest's published port, with its own retries (5 s, 5 min,
/// ... shortened tenfold); the ground truth lands in `dir`.
fn send(p: &Project, orders: u32, rate: u32, dir: &Path) -> tokio::process::Child {
    let sim = find_workspace_binary("clarity-sim").expect("clarity-sim is built");
    tokio::process::Command::new(sim)
        .args(["send", "--target"])
        .arg(format!("http://127.0.0.1:{}", p.port("INGEST_PORT")))
        .args(["--orders", &orders.to_string(), "--rate", &rate.to_string()])
        .args([
            "--seed",
            "11",
            "--faults",
            "duplicates,reorder",
            "--time-scale",
            "0.1",
        ])
        .arg("--truth-out")
        .arg(dir.join("truth.json"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits for the sender; its summary (responses by status) and the ground truth.
async fn sent(sender: tokio::process::Child, dir: &Path) -> (serde_json::Value, GroundTruth) {
    let out = tokio::time::timeout(Duration::from_secs(600), sender.wait_with_output())
        .await
        .expect("clarity-sim finished sending")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "clarity-sim failed to deliver: {text}"
    );
    let summary = text
        .find('{')
        .and_then(|i| {
            serde_json::Deserializer::from_str(&text[i..])
                .into_iter()
                .next()
        })
        .and_then(Result::ok)
        .unwrap_or_default();
    let truth = serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
    (summary, truth)
}

/// The sandbox's documents, through its admin API (no Xero budget spent).
struct Xero {
    http: reqwest::Client,
    docs: String,
}

impl Xero {
    async fn new(p: &Project, http: &reqwest::Client) -> Self {
        let sandbox = format!("http://127.0.0.1:{}", p.port("SANDBOX_PORT"));
        let tenants = get_json(http, &format!("{sandbox}/admin/tenants"), "sandbox-admin").await;
        let tenant = tenants[0]["tenant_id"].as_str().unwrap();
        Self {
            http: http.clone(),
            docs: format!("{sandbox}/admin/tenants/{tenant}/documents"),
        }
    }

    async fn wait_invoices(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let d = get_json(&self.http, &self.docs, "sandbox-admin").await;
            if d["Invoices"].as_array().map_or(0, Vec::len) >= n {
                return;
            }
            assert!(Instant::now() < deadline, "fewer than {n} invoices");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls until Xero ties out against `truth` (orders held for review excepted).
    async fn tie_out(&self, p: &Project, truth: &GroundTruth) -> ledgerline_demo::TieOut {
        let dl = format!("http://127.0.0.1:{}", p.port("DEAD_LETTER_PORT"));
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let docs: Documents =
                serde_json::from_value(get_json(&self.http, &self.docs, "sandbox-admin").await)
                    .unwrap();
            let open = get_json(
                &self.http,
                &format!("{dl}/v1/entries?status=open&limit=500"),
                TOKEN,
            )
            .await;
            let held: BTreeSet<String> = open["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["order_number"].as_str().map(str::to_owned))
                .collect();
            let tie = tie_out(truth, &docs, &held);
            if tie.ok() || Instant::now() > deadline {
                return tie;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and docker-compose: .ci/run runs it when `docker info` works"]
async fn compose_stack_ties_out_with_the_writer_and_nats_killed_mid_load() {
    ledgerline_platform::tls::install_crypto_provider();
    let http = ledgerline_platform::tls::http_client("compose-test").unwrap();
    let total = Instant::now();
    let p = Project::new();
    let t = bring_up(&p, 7).await;

    let dir = tempfile::tempdir().unwrap();
    let sender = send(&p, 300, 100, dir.path());
    let xero = Xero::new(&p, &http).await;

    // The writer killed (SIGKILL) mid-load, and started again.
    xero.wait_invoices(40).await;
    p.compose(&["kill", "xero-writer"]);
    p.compose(&["up", "-d", "--no-deps", "xero-writer"]);
    let t = phase("writer killed and restarted at 40 invoices", t);

    // NATS killed (SIGKILL) mid-load, and started again on its volume.
    xero.wait_invoices(90).await;
    p.compose(&["kill", "nats"]);
    p.compose(&["up", "-d", "--no-deps", "nats"]);
    p.wait_healthy(7, Duration::from_secs(120)).await;
    let t = phase(
        "NATS killed and restarted at 90 invoices, all healthy again",
        t,
    );

    let (summary, truth) = sent(sender, dir.path()).await;
    eprintln!("ingest answered: {}", summary["responses"]);
    let t = phase("every webhook accepted", t);

    // Nothing lost, nothing twice: every order's invoice once, to the cent.
    let tie = xero.tie_out(&p, &truth).await;
    assert!(tie.ok(), "{tie}\n{}", p.logs());
    let _ = phase("tied out", t);
    eprintln!("{tie}");
    drop(p);
    eprintln!(
        "PHASE down -v done; total {:.1} s",
        total.elapsed().as_secs_f64()
    );
}

/// What a JetStream client saw: one publish every 20 ms to an R3 stream, with its PubAck time.
#[derive(Default)]
struct Probe {
    /// Sent at (since the probe started), how long until the PubAck or the error, and which.
    samples: Vec<(Duration, Duration, Result<(), String>)>,
}

impl Probe {
    /// Publishes until `stop`, to every node's published port (the client moves between them).
    async fn run(urls: String, stop: tokio_util_stop::Stop) -> Probe {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls.split(',').collect::<Vec<_>>())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "PROBE".into(),
            subjects: vec!["probe.>".into()],
            num_replicas: 3,
            max_messages: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
        let started = Instant::now();
        let mut probe = Probe::default();
        let mut n = 0u64;
        while !stop.is_set() {
            n += 1;
            let at = started.elapsed();
            let t = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), async {
                js.publish(format!("probe.{}", n % 16), n.to_string().into())
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            let r = match r {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("no PubAck in 5 s".into()),
            };
            probe.samples.push((at, t.elapsed(), r));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        probe
    }

    /// Errors, PubAck latencies (p50, p99, max) and the longest time without a PubAck, for the
    /// publishes in flight at any moment of `window` (offsets since the probe started).
    fn report(&self, what: &str, window: (Duration, Duration)) -> String {
        let inside: Vec<_> = self
            .samples
            .iter()
            .filter(|(at, took, _)| *at + *took >= window.0 && *at <= window.1)
            .collect();
        let errors: Vec<&String> = inside
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().err())
            .collect();
        let mut ok: Vec<Duration> = inside
            .iter()
            .filter(|(_, _, r)| r.is_ok())
            .map(|(_, took, _)| *took)
            .collect();
        ok.sort();
        let pick = |q: f64| {
            ok.get(((ok.len() as f64 * q) as usize).min(ok.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let mut gap = Duration::ZERO;
        let mut last = window.0;
        for (at, took, r) in &inside {
            if r.is_ok() {
                gap = gap.max((*at + *took).saturating_sub(last));
                last = *at + *took;
            }
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &errors {
            *kinds.entry(e.split(':').next().unwrap_or(e)).or_default() += 1;
        }
        format!(
            "CLUSTER {what}: {} publishes, {} errors {kinds:?}, PubAck p50 {:?} p99 {:?} max {:?}, longest without a PubAck {:?}",
            inside.len(),
            errors.len(),
            pick(0.5),
            pick(0.99),
            ok.last().copied().unwrap_or_default(),
            gap
        )
    }
}

/// A stop flag the probe polls.
mod tokio_util_stop {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Default)]
    pub struct Stop(Arc<AtomicBool>);

    impl Stop {
        pub fn set(&self) {
            self.0.store(true, Ordering::Relaxed);
        }
        pub fn is_set(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and docker-compose; about three minutes"]
async fn cluster_loses_a_node_and_its_raw_leader_mid_load_and_loses_nothing() {
    ledgerline_platform::tls::install_crypto_provider();
    let http = ledgerline_platform::tls::http_client("cluster-test").unwrap();
    let p = Project::cluster();
    let t = bring_up(&p, 9).await;

    let urls = ["NATS_PORT", "NATS2_PORT", "NATS3_PORT"]
        .iter()
        .map(|k| format!("nats://127.0.0.1:{}", p.port(k)))
        .collect::<Vec<_>>()
        .join(",");
    let stop = tokio_util_stop::Stop::default();
    let probe_started = Instant::now();
    // On its own thread and runtime: the test's own waits (docker commands) must not hold it up.
    let probe = {
        let (urls, stop) = (urls.clone(), stop.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Probe::run(urls, stop))
        })
    };
    let dir = tempfile::tempdir().unwrap();
    // Slow enough (about two minutes of webhooks) that both faults land while the store sends.
    let sender = send(&p, 300, 12, dir.path());
    let xero = Xero::new(&p, &http).await;

    // 1. A node stopped mid-load, then started again.
    xero.wait_invoices(30).await;
    let down = probe_started.elapsed();
    p.compose(&["stop", "-t", "5", "nats-2"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    p.compose(&["start", "nats-2"]);
    p.wait_healthy(9, Duration::from_secs(180)).await;
    let stopped = (down, probe_started.elapsed() + Duration::from_secs(5));
    let t = phase("nats-2 stopped for 10 s and back, all healthy", t);

    // 2. The RAW stream's leader cut off the network, then reconnected.
    let client = async_nats::connect(urls.split(',').collect::<Vec<_>>())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream("RAW")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("RAW has a leader");
    let id = String::from_utf8(p.compose(&["ps", "-q", &leader]).stdout).unwrap();
    let id = id.trim().to_owned();
    let network = format!("{}_default", p.name);
    let cut = probe_started.elapsed();
    let docker = |args: &[&str]| {
        let st = Command::new("docker").args(args).status().unwrap();
        assert!(st.success(), "docker {args:?}");
    };
    docker(&["network", "disconnect", &network, &id]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    docker(&["network", "connect", "--alias", &leader, &network, &id]);
    p.wait_healthy(9, Duration::from_secs(180)).await;
    let cut = (cut, probe_started.elapsed() + Duration::from_secs(5));
    let t = phase(
        &format!("RAW's leader {leader} cut off for 10 s and back"),
        t,
    );

    let (summary, truth) = sent(sender, dir.path()).await;
    let t = phase("every webhook accepted", t);
    let tie = xero.tie_out(&p, &truth).await;
    stop.set();
    let probe = probe.join().unwrap();
    assert!(tie.ok(), "{tie}\n{}", p.logs());
    let _ = phase("tied out", t);
    let new_leader = js
        .get_stream("RAW")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .cluster
        .clone()
        .and_then(|c| c.leader);
    eprintln!("{tie}");
    eprintln!(
        "{}",
        probe.report(
            "quiet (before the first fault)",
            (Duration::ZERO, stopped.0)
        )
    );
    eprintln!("{}", probe.report("nats-2 stopped and restarted", stopped));
    eprintln!(
        "{}",
        probe.report(
            &format!("RAW leader {leader} cut off (RAW's leader now {new_leader:?})"),
            cut
        )
    );
    eprintln!(
        "CLUSTER ingest answered over the run: {} (503: stored nothing, the store retried)",
        summary["responses"]
    );
}
