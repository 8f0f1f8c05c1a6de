//! The API's contract: tokens and roles, store limits, masking, ETags, reasons, CSV, OpenAPI,
//! and the one-time token when none is configured.

use crate::helpers::*;
use ledgerline_testkit::ServiceProcess;
use serde_json::{Value, json};

async fn with_entries() -> Stack {
    let stack = Stack::start(Options::default()).await;
    publish_dead_letter(&stack.js, "main", 7001, "GST0").await;
    publish_dead_letter(&stack.js, "main", 7002, "GST0").await;
    publish_dead_letter(&stack.js, "outlet", 7003, "GST9").await;
    assert!(
        eventually(WAIT, || async {
            stack.get(Some(OPERATOR), "/v1/entries").await.1["total"] == 3
        })
        .await,
        "{}",
        stack.output()
    );
    stack
}

#[tokio::test]
async fn tokens_roles_and_store_limits_decide_who_sees_and_does_what() {
    let stack = with_entries().await;
    // No token, a wrong one: 401 with a challenge.
    let r = stack
        .http
        .get(stack.url("/v1/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(stack.get(Some("not-a-token"), "/v1/issues").await.0, 401);
    // A viewer reads, masked, and cannot act.
    let (s, page) = stack.get(Some(VIEWER), "/v1/entries?store=main").await;
    assert_eq!((s, page["total"].as_u64()), (200, Some(2)));
    let id = page["entries"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        page["entries"][0]["customer"]
            .as_str()
            .unwrap()
            .starts_with("b•••@"),
        "{page}"
    );
    let (_, full) = stack.get(Some(VIEWER), &format!("/v1/entries/{id}")).await;
    assert_eq!(
        full["payload"]["data"]["BillingContact"]["Address1"],
        "1•••"
    );
    assert!(
        full["payload"]["data"]["UserContactEmail"]
            .as_str()
            .unwrap()
            .contains("•••")
    );
    let (_, full) = stack
        .get(Some(OPERATOR), &format!("/v1/entries/{id}"))
        .await;
    assert_eq!(
        full["payload"]["data"]["BillingContact"]["Address1"],
        "12 Queen Street"
    );
    for (path, body) in [
        (format!("/v1/entries/{id}/replay"), Value::Null),
        (format!("/v1/entries/{id}/discard"), json!({"reason": "x"})),
        ("/v1/replays".to_owned(), json!({"dry_run": true})),
    ] {
        assert_eq!(stack.post(Some(VIEWER), &path, body).await.0, 403, "{path}");
    }
    let r = stack
        .http
        .get(stack.url(&format!("/v1/entries/{id}/payload")))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "raw payloads hold customer data");
    // A store-limited token sees only its store.
    let (_, page) = stack.get(Some(OUTLET_VIEWER), "/v1/entries").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["entries"][0]["store"], "outlet");
    assert_eq!(
        stack
            .get(Some(OUTLET_VIEWER), &format!("/v1/entries/{id}"))
            .await
            .0,
        404
    );
    let (_, issues) = stack.get(Some(OUTLET_VIEWER), "/v1/issues").await;
    assert_eq!(issues.as_array().unwrap().len(), 1);
    assert_eq!(
        issues[0]["key"],
        "normalizer/unknown_tax_code/tax_code/GST9"
    );
}

#[tokio::test]
async fn entries_group_change_by_etag_and_keep_an_audit_trail() {
    let stack = with_entries().await;
    let issues = stack.issues().await;
    assert_eq!(issues.len(), 2, "GST0 twice is one issue: {issues:?}");
    let gst0 = issues.iter().find(|i| i["open"] == 2).unwrap();
    assert_eq!(gst0["stores"], json!(["main"]));
    assert!(gst0["oldest_open_age_seconds"].as_i64().unwrap() >= 0);

    let (_, page) = stack.get(Some(OPERATOR), "/v1/entries?q=SO-007001").await;
    let id = page["entries"][0]["id"].as_str().unwrap().to_owned();
    let r = stack
        .http
        .get(stack.url(&format!("/v1/entries/{id}")))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    // A stale If-Match is refused; the current one works.
    let annotate = |tag: &'static str, etag: String| {
        let stack = &stack;
        let id = id.clone();
        async move {
            stack
                .http
                .post(stack.url(&format!("/v1/entries/{id}/annotate")))
                .bearer_auth(OPERATOR)
                .header("if-match", etag)
                .json(&json!({"action": "tag", "add": [tag]}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(annotate("urgent", etag.clone()).await.status(), 200);
    assert_eq!(annotate("again", etag).await.status(), 412);
    // Discarding needs a reason; with one it is audited, and it stops counting as open.
    let path = format!("/v1/entries/{id}/discard");
    assert_eq!(
        stack
            .post(Some(OPERATOR), &path, json!({"reason": " "}))
            .await
            .0,
        422
    );
    let (s, v) = stack
        .post(Some(OPERATOR), &path, json!({"reason": "test order"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "discarded");
    let audit: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(audit, ["received", "tagged", "discarded"]);
    assert!(
        v["audit"][2]["who"]
            .as_str()
            .unwrap()
            .starts_with("operator#")
    );
    let (_, open) = stack.get(Some(OPERATOR), "/v1/entries?status=open").await;
    assert_eq!(open["total"], 2);
    // Filters that do not parse are a 400, not an empty page.
    assert_eq!(
        stack
            .get(Some(OPERATOR), "/v1/entries?from=yesterday")
            .await
            .0,
        400
    );
    assert_eq!(
        stack
            .get(Some(OPERATOR), "/v1/entries?status=bogus")
            .await
            .0,
        400
    );
    assert_eq!(
        stack.get(Some(OPERATOR), "/v1/entries?limit=0").await.0,
        400
    );
    // CSV: a header and one row per entry; a viewer's is masked.
    let csv = stack
        .http
        .get(stack.url("/v1/export.csv?store=main"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,issue,stage"));
    assert!(!csv.contains("buyer7001@"), "{csv}");
    // The OpenAPI document describes the paths and the bearer scheme.
    let (s, doc) = stack.get(None, "/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["paths"]["/v1/entries"]["get"].is_object());
    assert!(doc["paths"]["/v1/issues/{id}/fix"]["post"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Metrics: open entries by stage and reason.
    assert!(
        eventually(WAIT, || async {
            let m = stack.dl.get("/metrics").map(|(_, b)| b).unwrap_or_default();
            m.contains("dead_letter_open_entries{stage=\"normalizer\",reason=\"mapping\"} 2")
        })
        .await,
        "{}",
        stack.dl.get("/metrics").unwrap().1
    );
}

#[tokio::test]
async fn without_tokens_it_serves_loopback_with_a_one_time_token_and_refuses_other_addresses() {
    ledgerline_platform::tls::install_crypto_provider();
    let nats = tokio::task::spawn_blocking(ledgerline_testkit::NatsServer::start)
        .await
        .unwrap();
    let url = nats.url();
    let dl = ServiceProcess::start(&binary(), &[], &[("NATS_URL", &url)]);
    let out = dl.output();
    let token = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("dlop_"))
        .unwrap_or_else(|| panic!("no one-time token printed: {out}"))
        .to_owned();
    let http = ledgerline_platform::tls::http_client("test").unwrap();
    let r = http
        .get(format!("{}/v1/issues", dl.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Printed once for the operator, never in a log line.
    assert_eq!(
        out.lines().filter(|l| l.contains(&token)).count(),
        1,
        "{out}"
    );
    // Any other address without tokens: it refuses to start, saying why.
    let public = std::process::Command::new(binary())
        .args(["--listen", "0.0.0.0:0"])
        .env("NATS_URL", &url)
        .env_remove("DEAD_LETTER_TOKENS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&public.stderr);
    assert!(!public.status.success(), "{text}");
    assert!(text.contains("DEAD_LETTER_TOKENS"), "{text}");
}
