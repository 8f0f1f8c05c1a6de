use crate::util::*;
use serde_json::{Value, json};

#[tokio::test]
async fn admin_needs_its_token_and_reads_documents_without_spending_budget() {
    let mut c = config();
    c.minute_limit = 60;
    let s = TestSandbox::start_with(c).await;
    let r = s
        .client
        .get(format!("{}/admin/state", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .get(format!("{}/admin/state", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "an API token is not an admin token");
    let id = s.contact("Admin Read Ltd").await;
    let before = s
        .req(reqwest::Method::GET, "/Organisation")
        .send()
        .await
        .unwrap();
    let before: u32 = before.headers()["x-minlimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..5 {
        let docs = s
            .admin(
                reqwest::Method::GET,
                &format!("/tenants/{}/documents", s.tenants[0]),
                Value::Null,
            )
            .await;
        assert_eq!(docs["Contacts"][0]["ContactID"], id);
        assert!(docs["Accounts"].as_array().unwrap().len() > 10);
    }
    let after = s
        .req(reqwest::Method::GET, "/Organisation")
        .send()
        .await
        .unwrap();
    let after: u32 = after.headers()["x-minlimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, before - 1, "admin reads cost nothing");
    let tenants = s.admin(reqwest::Method::GET, "/tenants", Value::Null).await;
    assert_eq!(tenants[0]["tenant_id"], s.tenants[0].to_string());
}

#[tokio::test]
async fn faults_errors_outage_forced_429_and_resets() {
    let s = TestSandbox::start().await;
    s.settings(json!({"error_rate": 1.0})).await;
    assert_eq!(s.get("/Organisation").await.0, 500);
    s.settings(json!({"error_rate": 0.0, "outage_secs": 30.0}))
        .await;
    assert_eq!(s.get("/Organisation").await.0, 503);
    s.settings(json!({"outage_secs": 0.0, "force_429": 2, "force_429_problem": "day"}))
        .await;
    let r = s
        .req(reqwest::Method::GET, "/Organisation")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-problem"], "day");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(s.get("/Organisation").await.0, 429);
    assert_eq!(s.get("/Organisation").await.0, 200);
    s.settings(json!({"reset_rate": 1.0})).await;
    let r = s.req(reqwest::Method::GET, "/Organisation").send().await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the connection is cut");
    s.settings(json!({"reset_rate": 0.0, "latency_ms": 150}))
        .await;
    let t = std::time::Instant::now();
    assert_eq!(s.get("/Organisation").await.0, 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));

    let counters = s
        .admin(reqwest::Method::GET, "/counters", Value::Null)
        .await;
    assert_eq!(counters["throttled"], 2);
    assert!(
        counters["calls"]["GET /organisation"][s.tenants[0].to_string()]
            .as_u64()
            .unwrap()
            >= 6
    );
    let log = s
        .admin(reqwest::Method::GET, "/requests?limit=3", Value::Null)
        .await;
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[2]["endpoint"], "/organisation");

    s.contact("Reset Me").await;
    s.admin(reqwest::Method::POST, "/reset", json!({})).await;
    let (_, v) = s.get("/Contacts").await;
    assert!(
        v["Contacts"].as_array().unwrap().is_empty(),
        "reset restores the seed"
    );
    let counters = s
        .admin(reqwest::Method::GET, "/counters", Value::Null)
        .await;
    assert_eq!(counters["throttled"], 0);
    let settings = s
        .admin(reqwest::Method::GET, "/settings", Value::Null)
        .await;
    assert_eq!(settings["latency_ms"], 0);
}

#[tokio::test]
async fn admin_can_expire_tokens() {
    let s = TestSandbox::start().await;
    assert_eq!(s.get("/Organisation").await.0, 200);
    s.admin(reqwest::Method::POST, "/tokens/expire", Value::Null)
        .await;
    let (st, v) = s.get("/Organisation").await;
    assert_eq!(st, 401);
    assert!(v["Detail"].as_str().unwrap().starts_with("TokenExpired"));
}

#[tokio::test]
async fn drop_after_apply_writes_then_cuts_the_answer() {
    let s = TestSandbox::start().await;
    s.settings(json!({"drop_after_apply": 1, "drop_after_apply_endpoint": "/contacts"}))
        .await;
    // Reads are never cut.
    assert_eq!(s.get("/Contacts").await.0, 200);
    let r = s
        .req(reqwest::Method::PUT, "/Contacts")
        .header("Idempotency-Key", "drop-1")
        .json(&json!({"Contacts": [{"Name": "Applied Unanswered"}]}))
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the answer is cut");
    let (_, v) = s.get("/Contacts").await;
    assert_eq!(
        v["Contacts"].as_array().unwrap().len(),
        1,
        "but it was applied"
    );
    assert_eq!(v["Contacts"][0]["Name"], "Applied Unanswered");
    let settings = s.settings(json!({})).await;
    assert_eq!(settings["drop_after_apply"], 0, "used up");
    // The same key replays the stored answer once the fault is spent.
    let r = s
        .req(reqwest::Method::PUT, "/Contacts")
        .header("Idempotency-Key", "drop-1")
        .json(&json!({"Contacts": [{"Name": "Applied Unanswered"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = s.get("/Contacts").await;
    assert_eq!(v["Contacts"].as_array().unwrap().len(), 1);
}
