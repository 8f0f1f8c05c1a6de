use crate::util::*;
use serde_json::json;

fn header(r: &reqwest::Response, k: &str) -> String {
    r.headers()
        .get(k)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn minute_limit_answers_429_with_retry_after_and_recovers() {
    let mut c = config();
    c.minute_limit = 60;
    c.day_limit = 5000;
    c.app_minute_limit = 10_000;
    let s = TestSandbox::start_with(c).await;
    // At time scale 6 a minute lasts 10 s, so 60 calls in it are quick and the reset is near.
    s.settings(json!({"time_scale": 6.0})).await;
    let mut last_min = 61;
    let mut seen_429 = None;
    for _ in 0..61 {
        let r = s
            .req(reqwest::Method::GET, "/Organisation")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            seen_429 = Some(r);
            break;
        }
        let min: u32 = header(&r, "x-minlimit-remaining").parse().unwrap();
        assert!(min < last_min, "X-MinLimit-Remaining decrements");
        last_min = min;
        assert!(header(&r, "x-daylimit-remaining").parse::<u32>().unwrap() < 5000);
        assert!(
            header(&r, "x-appminlimit-remaining")
                .parse::<u32>()
                .unwrap()
                < 10_000
        );
    }
    let r = seen_429.expect("the 61st call in a minute is refused");
    assert_eq!(header(&r, "x-rate-limit-problem"), "minute");
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After is scaled: {retry}");
    assert_eq!(header(&r, "x-minlimit-remaining"), "0");
    eventually(25, || async {
        (s.req(reqwest::Method::GET, "/Organisation")
            .send()
            .await
            .unwrap()
            .status()
            == 200)
            .then_some(())
    })
    .await;
    let counters = s
        .admin(reqwest::Method::GET, "/counters", json!(null))
        .await;
    assert!(counters["throttled"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn day_limit_and_app_minute_limit() {
    let mut c = config();
    c.tenants = 2;
    c.day_limit = 3;
    let s = TestSandbox::start_with(c).await;
    for _ in 0..3 {
        assert_eq!(s.get("/Organisation").await.0, 200);
    }
    let r = s
        .req(reqwest::Method::GET, "/Organisation")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-rate-limit-problem"), "day");
    assert!(
        header(&r, "retry-after").parse::<u64>().unwrap() > 3600,
        "a day window is long"
    );

    s.settings(json!({"day_limit": 1000, "app_minute_limit": 2}))
        .await;
    s.admin(reqwest::Method::POST, "/reset", json!({"documents": false}))
        .await;
    let token = s
        .admin(
            reqwest::Method::POST,
            "/tokens",
            json!({"grant": "authorization_code"}),
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let call = |t: usize| {
        let r = s
            .client
            .get(s.url("/Organisation"))
            .bearer_auth(&token)
            .header("xero-tenant-id", s.tenants[t].to_string());
        async move { r.send().await.unwrap() }
    };
    assert_eq!(call(0).await.status(), 200);
    assert_eq!(call(1).await.status(), 200);
    let r = call(1).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-rate-limit-problem"), "appminute");
}

#[tokio::test]
async fn more_than_five_concurrent_calls_are_refused() {
    let mut c = config();
    c.concurrent_limit = 5;
    let s = TestSandbox::start_with(c).await;
    s.settings(json!({"latency_ms": 800})).await;
    let calls: Vec<_> = (0..8)
        .map(|_| s.req(reqwest::Method::GET, "/Organisation").send())
        .collect();
    let results = futures::future::join_all(calls).await;
    let refused: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|r| r.status() == 429)
        .collect();
    assert!(refused.len() >= 3, "{} refused", refused.len());
    assert_eq!(header(refused[0], "x-rate-limit-problem"), "concurrent");
}

#[tokio::test]
async fn idempotency_keys_replay_count_and_reject_mismatches() {
    let s = TestSandbox::start().await;
    let c = s.contact("Idem Ltd").await;
    let body = json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": c},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}]}]});
    let send = |key: &str, body: serde_json::Value| {
        let r = s
            .req(reqwest::Method::PUT, "/Invoices")
            .header("Idempotency-Key", key)
            .json(&body);
        async move { r.send().await.unwrap() }
    };
    let a = send("key-1", body.clone()).await;
    let min_a: u32 = header(&a, "x-minlimit-remaining").parse().unwrap();
    let a: serde_json::Value = a.json().await.unwrap();
    let b = send("key-1", body.clone()).await;
    let min_b: u32 = header(&b, "x-minlimit-remaining").parse().unwrap();
    assert!(min_b < min_a, "replays still count against the limits");
    let b: serde_json::Value = b.json().await.unwrap();
    assert_eq!(a["Invoices"][0]["InvoiceID"], b["Invoices"][0]["InvoiceID"]);
    assert_eq!(a["Id"], b["Id"], "the stored response is replayed verbatim");
    let (_, list) = s.get("/Invoices").await;
    assert_eq!(list["Invoices"].as_array().unwrap().len(), 1);
    let mut other = body.clone();
    other["Invoices"][0]["Reference"] = json!("different");
    let r = send("key-1", other).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is used with a different request")
    );
    let r = send(&"k".repeat(129), body.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(send(&"k".repeat(128), body.clone()).await.status(), 200);
    // Errors are stored and replayed too.
    let bad = json!({"Invoices": [{"Type": "NOPE"}]});
    assert_eq!(send("key-err", bad.clone()).await.status(), 400);
    assert_eq!(send("key-err", bad).await.status(), 400);
    let counters = s
        .admin(reqwest::Method::GET, "/counters", json!(null))
        .await;
    assert_eq!(counters["idempotent_replays"], 2);
    // After the (scaled) six minutes the key is new again.
    s.settings(json!({"time_scale": 3600.0})).await;
    eventually(5, || async {
        let r = send("key-1", body.clone()).await;
        let v: serde_json::Value = r.json().await.unwrap();
        (v["Invoices"][0]["InvoiceID"] != a["Invoices"][0]["InvoiceID"]).then_some(())
    })
    .await;
}
