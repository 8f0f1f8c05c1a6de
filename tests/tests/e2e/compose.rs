//! The docker-compose cluster in real containers (ignored by default; `.ci/run` runs it when
//! `docker info` works): images built here by `deploy/images.sh`, `docker-compose up`, every
//! service healthy, 300 orders from clarity-sim (duplicates, reordering) with the writer and then
//! NATS killed mid-load, a tie-out in the sandbox (nothing lost, nothing twice), and everything
//! torn down, volumes included. Prints each phase's time.
//!
//! `cargo nextest run -p ledgerline-tests --run-ignored only -E 'test(compose_)' --no-capture`

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
}

impl Project {
    fn new() -> Self {
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
        }
    }

    fn port(&self, key: &str) -> &str {
        &self.env[key]
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("docker-compose")
            .current_dir(root())
            .args(["-p", &self.name])
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
            .args(["-p", &self.name, "logs", "--no-color", "--tail", "40"])
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
            .args([
                "-p",
                &self.name,
                "down",
                "-v",
                "--remove-orphans",
                "-t",
                "5",
            ])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and docker-compose: .ci/run runs it when `docker info` works"]
async fn compose_cluster_ties_out_with_the_writer_and_nats_killed_mid_load() {
    ledgerline_platform::tls::install_crypto_provider();
    let http = ledgerline_platform::tls::http_client("compose-test").unwrap();
    let total = Instant::now();

    // Images: the base is cached between runs; the binaries are the ones the tests built.
    let t = Instant::now();
    let st = Command::new(root().join("deploy/images.sh"))
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success(), "deploy/images.sh failed");
    let t = phase("images", t);

    let p = Project::new();
    p.compose(&["up", "-d"]);
    p.wait_healthy(7, Duration::from_secs(120)).await;
    let t = phase("up and healthy (7 containers)", t);

    // Orders, with the store's own retries (5 s, 5 min, ... shortened tenfold).
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.json");
    let sim = find_workspace_binary("clarity-sim").expect("clarity-sim is built");
    let mut sender = tokio::process::Command::new(sim)
        .args(["send", "--target"])
        .arg(format!("http://127.0.0.1:{}", p.port("INGEST_PORT")))
        .args(["--orders", "300", "--rate", "100", "--seed", "11"])
        .args(["--faults", "duplicates,reorder", "--time-scale", "0.1"])
        .arg("--truth-out")
        .arg(&truth_path)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sandbox = format!("http://127.0.0.1:{}", p.port("SANDBOX_PORT"));
    let tenants = get_json(&http, &format!("{sandbox}/admin/tenants"), "sandbox-admin").await;
    let tenant = tenants[0]["tenant_id"].as_str().unwrap().to_owned();
    let docs_url = format!("{sandbox}/admin/tenants/{tenant}/documents");
    let invoices = |d: &serde_json::Value| d["Invoices"].as_array().map_or(0, Vec::len);
    let wait_invoices = |n: usize| {
        let (http, url) = (http.clone(), docs_url.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let d = get_json(&http, &url, "sandbox-admin").await;
                if invoices(&d) >= n {
                    return;
                }
                assert!(Instant::now() < deadline, "fewer than {n} invoices");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };

    // The writer killed (SIGKILL) mid-load, and started again.
    wait_invoices(40).await;
    p.compose(&["kill", "xero-writer"]);
    p.compose(&["up", "-d", "--no-deps", "xero-writer"]);
    let t = phase("writer killed and restarted at 40 invoices", t);

    // NATS killed (SIGKILL) mid-load, and started again on its volume.
    wait_invoices(90).await;
    p.compose(&["kill", "nats"]);
    p.compose(&["up", "-d", "--no-deps", "nats"]);
    p.wait_healthy(7, Duration::from_secs(120)).await;
    let t = phase(
        "NATS killed and restarted at 90 invoices, all healthy again",
        t,
    );

    let st = tokio::time::timeout(Duration::from_secs(300), sender.wait())
        .await
        .expect("clarity-sim finished sending")
        .unwrap();
    assert!(st.success(), "clarity-sim failed to deliver");
    let truth: GroundTruth = serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    let t = phase("every webhook accepted", t);

    // Nothing lost, nothing twice: every order's invoice once, to the cent.
    let dl = format!("http://127.0.0.1:{}", p.port("DEAD_LETTER_PORT"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let tie = loop {
        let docs: Documents =
            serde_json::from_value(get_json(&http, &docs_url, "sandbox-admin").await).unwrap();
        let open = get_json(
            &http,
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
        let tie = tie_out(&truth, &docs, &held);
        if tie.ok() || Instant::now() > deadline {
            break tie;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(tie.ok(), "{tie}\n{}", p.logs());
    let _ = phase("tied out", t);
    eprintln!("{tie}");
    drop(p);
    eprintln!(
        "PHASE down -v done; total {:.1} s",
        total.elapsed().as_secs_f64()
    );
}
