//! The Kubernetes manifests (`deploy/k8s`, a kustomize base with `dev` and `prod` overlays):
//! each overlay rendered with `kubectl kustomize`, every object validated against the
//! Kubernetes 1.33 schemas with `kubernetes-validate --strict` (the ServiceMonitor, a CRD, is
//! warned about, not validated), and the rendering checked against the code: every service,
//! every environment variable one its binary reads, ports, probes and images as in the compose
//! file, security settings, and NATS as a three-node StatefulSet at R3.

use crate::deploy::{compose, repo, str_of};
use ledgerline_testkit::{python_tool, workspace_binary};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const SERVICES: [&str; 5] = [
    "webhook-ingest",
    "normalizer",
    "xero-writer",
    "reconciler",
    "dead-letter",
];
const OVERLAYS: [&str; 2] = ["dev", "prod"];
const VALIDATOR: &str = "kubernetes-validate==1.37.0";

fn render(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo(&format!("deploy/k8s/overlays/{overlay}")))
        .output()
        .expect("kubectl is installed (kubectl kustomize)");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("a rendered object parses"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| str_of(d, &["kind"]) == Some(kind))
        .collect()
}

fn name(d: &Value) -> &str {
    str_of(d, &["metadata", "name"]).unwrap()
}

/// `kubernetes-validate --strict` for Kubernetes 1.33 on `text`: (passed, what it printed).
fn validate(text: &str) -> (bool, String) {
    let bin = python_tool("kubernetes-validate", VALIDATOR);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", "1.33.0", "--quiet"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_overlay_renders_and_validates_against_kubernetes_1_33() {
    for overlay in OVERLAYS {
        let text = render(overlay);
        let (ok, said) = validate(&text);
        assert!(ok, "{overlay}: {said}");
        // The one CRD is named, not silently passed.
        assert!(
            said.contains("ServiceMonitor"),
            "{overlay}: the CRD is warned about: {said}"
        );
        for line in said.lines().filter(|l| !l.trim().is_empty()) {
            assert!(line.contains("ServiceMonitor"), "{overlay}: {line}");
        }
    }
    // The validator does fail a wrong object (an unknown field under --strict).
    let bad = render("dev").replacen(
        "terminationGracePeriodSeconds: 40",
        "terminationGracePeriodSeconds: 40\n      gracefulness: true",
        1,
    );
    assert!(
        !validate(&bad).0,
        "strict validation rejects an unknown field"
    );
}

/// The environment variables a binary reads, from its `--help` (`[env: NAME=...]`).
fn env_read_by(bin: &str) -> BTreeSet<String> {
    let out = Command::new(workspace_binary(bin))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut vars: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .next()
        })
        .map(str::to_owned)
        .collect();
    // Read by the telemetry set-up, not a flag.
    vars.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into());
    vars
}

#[test]
fn the_manifests_match_the_code_and_the_compose_file() {
    let compose = compose();
    for overlay in OVERLAYS {
        let docs = docs(&render(overlay));
        let config: BTreeMap<String, String> = of_kind(&docs, "ConfigMap")
            .into_iter()
            .find(|c| name(c) == "ledgerline")
            .and_then(|c| c.get("data"))
            .and_then(Value::as_mapping)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect();
        assert_eq!(config["NATS_REPLICAS"], "3", "{overlay}: streams at R3");
        let secret_keys: BTreeSet<&str> = of_kind(&docs, "Secret")[0]
            .get("stringData")
            .and_then(Value::as_mapping)
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        let deployments = of_kind(&docs, "Deployment");
        let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
        assert_eq!(names, SERVICES.into_iter().collect(), "{overlay}");
        for d in deployments {
            let svc = name(d);
            let pod = &d["spec"]["template"]["spec"];
            assert!(
                pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 30,
                "{overlay}/{svc}: longer than the 30 s drain"
            );
            assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
            assert!(pod["topologySpreadConstraints"].as_sequence().is_some());
            let c = &pod["containers"][0];
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"],
                Value::Bool(true)
            );
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"],
                Value::Bool(false)
            );
            assert_eq!(
                str_of(c, &["readinessProbe", "httpGet", "path"]),
                Some("/readyz")
            );
            assert_eq!(
                str_of(c, &["livenessProbe", "httpGet", "path"]),
                Some("/healthz")
            );
            assert!(c["resources"]["requests"]["memory"].as_str().is_some());
            assert!(c["resources"]["limits"]["memory"].as_str().is_some());
            // The image and the port are the compose file's.
            let image = str_of(c, &["image"]).unwrap();
            let in_compose = str_of(&compose["services"][svc], &["image"]).unwrap();
            assert_eq!(
                image.split(':').next(),
                in_compose.split(':').next(),
                "{overlay}/{svc}: the image compose runs"
            );
            assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8080));
            let env = c["env"].as_sequence().unwrap();
            let listen = env
                .iter()
                .find(|e| e["name"] == "LISTEN_ADDR")
                .and_then(|e| e["value"].as_str());
            assert_eq!(
                listen,
                str_of(&compose["services"][svc], &["environment", "LISTEN_ADDR"]),
                "{overlay}/{svc}: listens where compose has it"
            );
            // Every variable set is one the binary reads; every secret key exists.
            let reads = env_read_by(svc);
            let mut set: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
            set.extend(config.keys().map(String::as_str));
            for var in set {
                assert!(
                    reads.contains(var),
                    "{overlay}/{svc} sets {var}, which it does not read"
                );
            }
            for e in env {
                // Required keys exist (an optional one is documented in the Secret, commented).
                let optional = e["valueFrom"]["secretKeyRef"]["optional"] == Value::Bool(true);
                if let Some(key) = str_of(e, &["valueFrom", "secretKeyRef", "key"])
                    && !optional
                {
                    assert!(
                        secret_keys.contains(key),
                        "{overlay}/{svc}: secret key {key}"
                    );
                }
            }
        }
        // Scaling and disruption.
        let hpas: BTreeSet<&str> = of_kind(&docs, "HorizontalPodAutoscaler")
            .into_iter()
            .map(|h| str_of(h, &["spec", "scaleTargetRef", "name"]).unwrap())
            .collect();
        assert_eq!(hpas, ["normalizer", "xero-writer"].into_iter().collect());
        let pdbs: BTreeSet<&str> = of_kind(&docs, "PodDisruptionBudget")
            .into_iter()
            .map(name)
            .collect();
        for s in SERVICES.iter().chain(&["nats"]) {
            assert!(pdbs.contains(s), "{overlay}: a PodDisruptionBudget for {s}");
        }
        // NATS: three nodes on volumes, durable acks, reachable only from Ledgerline.
        let nats = of_kind(&docs, "StatefulSet")[0];
        assert_eq!(nats["spec"]["replicas"].as_u64(), Some(3));
        assert!(nats["spec"]["volumeClaimTemplates"].as_sequence().is_some());
        let conf = of_kind(&docs, "ConfigMap")
            .into_iter()
            .find(|c| name(c).starts_with("nats-config"))
            .and_then(|c| c["data"]["nats-k8s.conf"].as_str())
            .unwrap();
        assert!(conf.contains("sync_interval: always") && conf.contains("routes"));
        let policies: BTreeSet<&str> = of_kind(&docs, "NetworkPolicy")
            .into_iter()
            .map(name)
            .collect();
        for p in [
            "default-deny-ingress",
            "http-through-ingress",
            "nats-from-ledgerline",
        ] {
            assert!(policies.contains(p), "{overlay}: NetworkPolicy {p}");
        }
        let ingress = of_kind(&docs, "Ingress");
        let routed: BTreeSet<&str> = ingress[0]["spec"]["rules"][0]["http"]["paths"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        for path in ["/webhooks/clarity", "/webhooks/xero", "/ui", "/report"] {
            assert!(
                routed.contains(path),
                "{overlay}: the Ingress routes {path}"
            );
        }
        assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    }
}
