use crate::util::*;
use serde_json::json;

#[tokio::test]
async fn lists_page_with_a_pagination_block() {
    let s = TestSandbox::start().await;
    let names: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"Name": format!("Pager {i}")}))
        .collect();
    assert_eq!(s.put("/Contacts", json!({"Contacts": names})).await.0, 200);
    let (_, v) = s.get("/Contacts?page=2&pageSize=2").await;
    assert_eq!(v["Contacts"].as_array().unwrap().len(), 2);
    assert_eq!(v["Contacts"][0]["Name"], "Pager 2");
    assert_eq!(
        v["pagination"],
        json!({"page": 2, "pageSize": 2, "pageCount": 3, "itemCount": 5})
    );
    let (_, v) = s.get("/Contacts?page=1").await;
    assert_eq!(v["pagination"]["pageSize"], 100);
    let (_, v) = s.get("/Contacts?page=1&pageSize=5000").await;
    assert_eq!(v["pagination"]["pageSize"], 1000);
    let (_, v) = s.get("/Contacts?order=Name%20DESC").await;
    assert_eq!(v["Contacts"][0]["Name"], "Pager 4");
}

#[tokio::test]
async fn invoice_filters_and_where_expressions() {
    let s = TestSandbox::start().await;
    let a = s.contact("Filter A").await;
    let b = s.contact("Filter B").await;
    let ia = s.invoice(&a, "10").await;
    let ib = s.invoice(&b, "20").await;
    let (_, v) = s.put("/Invoices", json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": a}, "Reference": "ORDER-77", "Date": "2026-10-15",
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 5, "AccountCode": "200"}]}]})).await;
    let draft = v["Invoices"][0].clone();
    let count = |v: &serde_json::Value| v["Invoices"].as_array().unwrap().len();
    let (_, v) = s
        .get(&format!(
            "/Invoices?IDs={},{}",
            ia["InvoiceID"].as_str().unwrap(),
            ib["InvoiceID"].as_str().unwrap()
        ))
        .await;
    assert_eq!(count(&v), 2);
    let (_, v) = s
        .get(&format!(
            "/Invoices?InvoiceNumbers={}",
            ia["InvoiceNumber"].as_str().unwrap()
        ))
        .await;
    assert_eq!(count(&v), 1);
    let (_, v) = s.get(&format!("/Invoices?ContactIDs={a}")).await;
    assert_eq!(count(&v), 2);
    let (_, v) = s.get("/Invoices?Statuses=DRAFT").await;
    assert_eq!(count(&v), 1);
    assert_eq!(v["Invoices"][0]["InvoiceID"], draft["InvoiceID"]);
    let (_, v) = s.get("/Invoices?searchTerm=order-7").await;
    assert_eq!(count(&v), 1);
    let w = |expr: &str| {
        format!(
            "/Invoices?where={}",
            expr.replace(' ', "%20")
                .replace('"', "%22")
                .replace('=', "%3D")
                .replace('&', "%26")
        )
    };
    let (_, v) = s
        .get(&w(&format!(r#"Contact.ContactID==Guid("{b}")"#)))
        .await;
    assert_eq!(count(&v), 1);
    let (_, v) = s
        .get(&w(r#"Date>=DateTime(2026,11,01) AND Status=="AUTHORISED""#))
        .await;
    assert_eq!(count(&v), 2);
    let (_, v) = s.get(&w(r#"Status!="AUTHORISED""#)).await;
    assert_eq!(count(&v), 1);
    let (_, v) = s.get(&w(r#"Status=="DRAFT" OR Total>=23"#)).await;
    assert_eq!(count(&v), 2);
    let (st, _) = s.get(&w(r#"Status=="#)).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn if_modified_since_returns_only_later_changes() {
    let s = TestSandbox::start().await;
    let a = s.contact("Sync A").await;
    let first = s.invoice(&a, "10").await;
    let stamp = first["UpdatedDateUTC"].as_str().unwrap().to_string();
    let ms: i64 = stamp
        .trim_start_matches("/Date(")
        .split('+')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Wait until the clock has moved past the first invoice's timestamp.
    eventually(5, || async {
        (chrono::Utc::now().timestamp_millis() > ms + 1).then_some(())
    })
    .await;
    let second = s.invoice(&a, "20").await;
    let since = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    let r = s
        .req(reqwest::Method::GET, "/Invoices")
        .header("If-Modified-Since", since)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InvoiceID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second["InvoiceID"].as_str().unwrap()]);
}

#[tokio::test]
async fn unknown_resources_are_404_in_plain_text() {
    let s = TestSandbox::start().await;
    let r = s
        .req(
            reqwest::Method::GET,
            &format!("/Invoices/{}", uuid::Uuid::new_v4()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        r.text().await.unwrap(),
        "The resource you're looking for cannot be found"
    );
    let r = s
        .req(reqwest::Method::GET, "/NoSuchThing")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Paths are case-insensitive.
    let (st, _) = s.get("/invoices").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn health_ready_and_metrics_are_served() {
    let s = TestSandbox::start().await;
    for p in ["/healthz", "/readyz"] {
        assert_eq!(
            s.client
                .get(format!("{}{p}", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    s.get("/Organisation").await;
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("xero_sandbox_requests_total{status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("xero_sandbox_throttled_total 0"));
}

#[tokio::test]
async fn snapshot_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.snapshot = Some(dir.path().join("snap.json"));
    let s = TestSandbox::start_with(c.clone()).await;
    let id = s.contact("Persistent Ltd").await;
    let tenant = s.tenants[0];
    s.stop().await;
    let s = TestSandbox::start_with(c).await;
    assert_eq!(s.tenants[0], tenant);
    let (st, v) = s.get(&format!("/Contacts/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["Contacts"][0]["Name"], "Persistent Ltd");
}

#[tokio::test]
async fn seed_file_defines_several_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.json");
    let t1 = uuid::Uuid::new_v4();
    std::fs::write(
        &path,
        json!({"tenants": [
            {"name": "Alpha Ltd", "tenant_id": t1, "period_lock_date": "2026-01-31"},
            {"name": "Beta Ltd", "currencies": ["NZD", "AUD"]}
        ]})
        .to_string(),
    )
    .unwrap();
    let mut c = config();
    c.seed = Some(path);
    let s = TestSandbox::start_with(c).await;
    assert_eq!(s.tenants.len(), 2);
    assert_eq!(s.tenants[0], t1);
    let (_, v) = s.get("/Organisation").await;
    assert_eq!(v["Organisations"][0]["Name"], "Alpha Ltd");
    let r = s
        .client
        .get(s.url("/Currencies"))
        .bearer_auth(&s.token)
        .header("xero-tenant-id", s.tenants[1].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a custom connection reaches one organisation"
    );
}
