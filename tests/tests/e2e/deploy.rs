//! docker-compose.yml (as `docker-compose config` resolves it) is checked by parsing it, and by
//! running the same binaries with the same settings directly; the alert rules against the code.
//! The compose stack itself runs in real containers in `compose.rs`; Kubernetes is `k8s.rs`.

use ledgerline_testkit::{NatsServer, ServiceProcess, workspace_binary};
use serde_norway::Value;
use std::path::PathBuf;
use std::time::Duration;

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

pub fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// docker-compose.yml as docker-compose reads it (variables at their defaults, anchors merged,
/// every profile), so what is checked is what would run.
pub fn compose() -> Value {
    let out = std::process::Command::new("docker-compose")
        .current_dir(repo(""))
        .args(["--profile", "demo", "config"])
        .output()
        .expect("docker-compose is installed");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_norway::from_slice(&out.stdout).unwrap()
}

/// Services in docker-compose.yml that run a workspace binary (image `ledgerline/<binary>`),
/// with their environment.
fn compose_services() -> Vec<(String, Vec<(String, String)>)> {
    let compose = compose();
    let services = compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("services");
    services
        .iter()
        .filter_map(|(name, svc)| {
            let image = str_of(svc, &["image"]).expect("every service names its image");
            let bin = image
                .strip_prefix("ledgerline/")?
                .split(':')
                .next()?
                .to_owned();
            // NATS and Prometheus are not ours (the required list below keeps ours all here).
            if ["nats", "prometheus"].contains(&bin.as_str()) {
                return None;
            }
            assert_eq!(
                name.as_str(),
                Some(bin.as_str()),
                "service name matches its binary"
            );
            let test = svc
                .get("healthcheck")
                .and_then(|h| h.get("test"))
                .and_then(Value::as_sequence)
                .unwrap_or_else(|| panic!("{bin} has a healthcheck"));
            assert!(
                test.iter().any(|t| t.as_str() == Some("healthcheck")),
                "{bin} checks itself: {test:?}"
            );
            let env = svc
                .get("environment")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().unwrap().to_owned(),
                                v.as_str().map(str::to_owned).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some((bin, env))
        })
        .collect()
}

#[test]
fn compose_names_real_binaries_and_a_jetstream_nats() {
    let compose = compose();
    let nats = compose
        .get("services")
        .and_then(|s| s.get("nats"))
        .expect("a nats service");
    let image = str_of(nats, &["image"]).unwrap();
    assert!(image.starts_with("ledgerline/nats:"), "built here: {image}");
    let dockerfile = std::fs::read_to_string(repo("deploy/nats.Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY deploy/nats/ /etc/nats/"));
    let volumes = nats.get("volumes").and_then(Value::as_sequence).unwrap();
    assert!(
        volumes.iter().any(|v| {
            str_of(v, &["target"]) == Some("/data")
                || v.as_str().is_some_and(|v| v.starts_with("nats-data:/data"))
        }),
        "JetStream's store on a named volume: {volumes:?}"
    );
    let services = compose_services();
    for required in [
        "webhook-ingest",
        "normalizer",
        "xero-writer",
        "reconciler",
        "dead-letter",
        "xero-sandbox",
        "clarity-sim",
    ] {
        assert!(
            services.iter().any(|(b, _)| b == required),
            "{required} missing from docker-compose.yml"
        );
    }
    for (bin, env) in &services {
        let path = workspace_binary(bin);
        let help = std::process::Command::new(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{bin} --help");
        // The healthcheck subcommand: with nothing on its address it says so and fails.
        let port = ledgerline_testkit::free_port();
        let check = std::process::Command::new(&path)
            .arg("healthcheck")
            .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
            .output()
            .unwrap();
        assert!(
            !check.status.success(),
            "{bin} healthcheck with nothing there"
        );
        assert!(
            String::from_utf8_lossy(&check.stderr).contains("nothing answers"),
            "{bin}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        if bin != "xero-sandbox" && bin != "clarity-sim" {
            assert!(
                env.iter()
                    .any(|(k, v)| k == "NATS_URL" && v == "nats://nats:4222"),
                "{bin} points at nats"
            );
        }
    }
    let conf = std::fs::read_to_string(repo("deploy/nats/nats-server.conf")).unwrap();
    assert!(
        conf.contains("sync_interval: always"),
        "acked means on disk"
    );
}

/// The compose services, run directly with the compose environment (host names swapped for
/// local addresses), all reach /readyz on one nats-server.
#[test]
fn compose_services_start_and_become_ready() {
    let nats = NatsServer::start();
    let mut running = Vec::new();
    for (bin, env) in compose_services() {
        if bin == "clarity-sim" {
            continue; // a one-shot sender, not a server
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k != "LISTEN_ADDR")
            .map(|(k, v)| (k, v.replace("nats://nats:4222", &nats.url())))
            .collect();
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut p = ServiceProcess::spawn(&workspace_binary(&bin), &[], &env_refs);
        p.wait_ready(Duration::from_secs(60));
        running.push((bin, p));
    }
    for (bin, mut p) in running {
        let status = p.terminate(Duration::from_secs(40)).expect("exits");
        assert!(
            status.success(),
            "{bin} exits 0 on SIGTERM:\n{}",
            p.output()
        );
    }
}

/// An orchestrator stops services while NATS is down too (a whole-cluster stop, a node loss):
/// each NATS service still exits 0 on SIGTERM, within its grace, instead of hanging on a flush.
#[test]
fn services_stop_on_sigterm_while_nats_is_gone() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let mut running: Vec<(&str, ServiceProcess)> = ["webhook-ingest", "normalizer", "xero-writer"]
        .into_iter()
        .map(|bin| {
            let mut p = ServiceProcess::spawn(
                &workspace_binary(bin),
                &[],
                &[
                    ("NATS_URL", url.as_str()),
                    // No Xero here: the writer starts ready regardless.
                    ("XERO_IDENTITY_URL", "http://127.0.0.1:9"),
                    ("XERO_API_URL", "http://127.0.0.1:9/api.xro/2.0"),
                ],
            );
            p.wait_ready(Duration::from_secs(60));
            (bin, p)
        })
        .collect();
    nats.stop();
    // All at once, as an orchestrator would (each may use its 10 s finishing grace).
    std::thread::scope(|s| {
        for (bin, p) in &mut running {
            s.spawn(move || {
                let status = p.terminate(Duration::from_secs(60));
                assert!(
                    status.is_some_and(|s| s.success()),
                    "{bin} did not exit 0 on SIGTERM with NATS gone ({status:?}):\n{}",
                    p.output()
                );
            });
        }
    });
}

/// The alert rules parse, and every metric they name is one a service exports: its name is in
/// a service's source, where the metric is recorded (counters and gauges appear on /metrics
/// only once recorded, so reading a fresh service's page would miss them).
#[test]
fn alert_rules_name_only_metrics_the_services_export() {
    let text = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    let rules: Value = serde_norway::from_str(&text).unwrap();
    let mut sources = String::new();
    for dir in std::fs::read_dir(repo("services")).unwrap() {
        let src = dir.unwrap().path().join("src");
        let mut stack = vec![src];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
    }
    let mut named = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            assert!(rule["labels"]["severity"].as_str().is_some(), "{alert}");
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{alert}");
            // Metric names: identifiers with an underscore that are not PromQL functions.
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let promql = ["histogram_quantile"];
                if !word.contains('_') || promql.contains(&word) {
                    continue;
                }
                named += 1;
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    sources.contains(&format!("\"{base}\"")),
                    "{alert}: no service exports {word}"
                );
            }
        }
    }
    assert!(named >= 10, "{named} metric names read");
}
