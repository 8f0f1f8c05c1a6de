//! API robustness: schemathesis (from PyPI, in a venv under target/) generates requests from
//! `/openapi.json` and checks every answer, with a viewer's token and then an operator's: no
//! 5xx, every status, content type, header and body as the schema says, bad input refused,
//! good input accepted (or, if well-formed but not acceptable, 422: see `schemathesis.toml`).
//! Bounded (`-n 15`, a fixed seed): about 20 s for both tokens once the venv exists.

use crate::helpers::*;
use ledgerline_testkit::python_tool;
use std::process::Command;

/// The pinned version: a new one may bring new checks, taken on deliberately.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let bin = tokio::task::spawn_blocking(|| python_tool("schemathesis", SCHEMATHESIS))
        .await
        .unwrap();
    let stack = Stack::start(Options::default()).await;
    // Entries of both stages, in two stores, so that lists, shows and actions meet real ids.
    publish_dead_letter(&stack.js, "main", 7101, "GST0").await;
    publish_dead_letter(&stack.js, "outlet", 7102, "GST9").await;
    publish_dead_letter_at(&stack.js, true, "main", 7103, "GST0", 0).await;
    assert!(
        eventually(WAIT, || async {
            stack.get(Some(OPERATOR), "/v1/entries").await.1["total"] == 3
        })
        .await,
        "{}",
        stack.output()
    );
    let schema = stack.url("/openapi.json");
    let report = tempfile::tempdir().unwrap();
    for (role, token) in [("viewer", VIEWER), ("operator", OPERATOR)] {
        let (bin, schema, dir) = (bin.clone(), schema.clone(), report.path().to_owned());
        let out = tokio::task::spawn_blocking(move || {
            let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
            Command::new(bin.join("st"))
                .args(["--config-file", config, "run", &schema])
                .args(["--header", &format!("Authorization: Bearer {token}")])
                .args(["--checks", "all", "--max-examples", "15", "--seed", "1"])
                // One worker: CPython 3.11's ast is not thread-safe (gh-106905), and hypothesis parses
                // lambdas while describing strategies, so two threads fail at random.
                .args(["--workers", "1", "--request-timeout", "30"])
                // No colour in a captured log.
                .env("NO_COLOR", "1")
                .current_dir(&dir)
                .output()
                .expect("st runs")
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("--- schemathesis as {role}\n{text}");
        assert!(
            out.status.success(),
            "schemathesis as {role} found failures:\n{text}\n{}",
            stack.output()
        );
    }
}
