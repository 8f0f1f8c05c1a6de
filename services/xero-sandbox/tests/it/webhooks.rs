use crate::util::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Received {
    itr: usize,
    events: Vec<Value>,
}

async fn receive(State(st): State<Arc<Mutex<Received>>>, h: HeaderMap, body: Bytes) -> StatusCode {
    let sig = h
        .get("x-xero-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sig != xero_sandbox::webhooks::sign("hook-key", &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    // Every delivery must match the WebhookEvent schema of xero-webhooks.yaml (credit-note
    // events add `data`, declared by CreditNoteWebhookEvent).
    let spec = crate::spec::load("xero-webhooks.yaml");
    let mut plain = v.clone();
    for e in plain["events"].as_array_mut().unwrap() {
        if e["eventCategory"] == "CREDITNOTE" {
            assert!(
                e["data"]["Type"].is_string() && e["data"]["Status"].is_string(),
                "{e}"
            );
            e.as_object_mut().unwrap().remove("data");
        }
    }
    let mut errs = Vec::new();
    crate::spec::check(
        &spec,
        &plain,
        &spec["components"]["schemas"]["WebhookEvent"],
        "WebhookEvent",
        &mut errs,
    );
    if !v["events"].as_array().unwrap().is_empty() {
        assert!(errs.is_empty(), "{}", errs.join("\n"));
    }
    let mut r = st.lock().unwrap();
    if v["events"].as_array().unwrap().is_empty() {
        r.itr += 1;
    } else {
        r.events
            .extend(v["events"].as_array().unwrap().iter().cloned());
    }
    StatusCode::OK
}

#[tokio::test]
async fn signed_events_follow_an_intent_to_receive_handshake() {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut c = config();
    c.webhook_url = Some(url);
    c.webhook_key = "hook-key".into();
    let s = TestSandbox::start_with(c).await;
    let contact = s.contact("Hooked Ltd").await;
    let inv = s.invoice(&contact, "10").await;
    let (_, v) = s.put("/CreditNotes", json!({"CreditNotes": [{"Type": "ACCRECCREDIT", "Contact": {"ContactID": contact},
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}]}]})).await;
    let cn = v["CreditNotes"][0]["CreditNoteID"].clone();
    let events = eventually(10, || async {
        let r = received.lock().unwrap();
        (r.events.len() >= 3).then(|| r.events.clone())
    })
    .await;
    assert_eq!(
        received.lock().unwrap().itr,
        1,
        "one correctly signed handshake (the badly signed one got 401)"
    );
    assert_eq!(events[0]["eventCategory"], "CONTACT");
    assert_eq!(events[0]["eventType"], "CREATE");
    assert_eq!(events[0]["resourceId"], contact);
    assert_eq!(events[0]["tenantId"], s.tenants[0].to_string());
    assert!(
        events[0]["resourceUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Contacts/{contact}"))
    );
    assert_eq!(events[1]["eventCategory"], "INVOICE");
    assert_eq!(events[1]["resourceId"], inv["InvoiceID"]);
    assert_eq!(events[2]["eventCategory"], "CREDITNOTE");
    assert_eq!(events[2]["resourceId"], cn);
    assert_eq!(events[2]["data"]["Type"], "ACCRECCREDIT");
    let counters = s
        .admin(reqwest::Method::GET, "/counters", Value::Null)
        .await;
    assert_eq!(counters["webhook_itr_passed"], true);
}

#[derive(Default)]
struct Flaky {
    fail_next: usize,
    events: usize,
    checks_signature: bool,
}

async fn flaky(State(st): State<Arc<Mutex<Flaky>>>, h: HeaderMap, body: Bytes) -> StatusCode {
    let mut f = st.lock().unwrap();
    let sig = h
        .get("x-xero-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if f.checks_signature && sig != xero_sandbox::webhooks::sign("hook-key", &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    let n = v["events"].as_array().unwrap().len();
    if n > 0 && f.fail_next > 0 {
        f.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    f.events += n;
    StatusCode::OK
}

async fn start_receiver(state: Arc<Mutex<Flaky>>) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(flaky))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_scaled_backoff() {
    let st = Arc::new(Mutex::new(Flaky {
        fail_next: 2,
        checks_signature: true,
        ..Default::default()
    }));
    let mut c = config();
    c.webhook_url = Some(start_receiver(st.clone()).await);
    c.webhook_key = "hook-key".into();
    c.time_scale = 200.0;
    let s = TestSandbox::start_with(c).await;
    s.contact("Retry Ltd").await;
    eventually(10, || async {
        (st.lock().unwrap().events == 1).then_some(())
    })
    .await;
    let counters = s
        .admin(reqwest::Method::GET, "/counters", Value::Null)
        .await;
    assert_eq!(counters["webhook_failures"], 2);
    assert_eq!(counters["webhooks_delivered"], 1);
}

#[tokio::test]
async fn a_receiver_that_accepts_bad_signatures_fails_intent_to_receive() {
    let st = Arc::new(Mutex::new(Flaky::default()));
    let mut c = config();
    c.webhook_url = Some(start_receiver(st.clone()).await);
    c.webhook_key = "hook-key".into();
    let s = TestSandbox::start_with(c).await;
    s.contact("Unverified Ltd").await;
    let counters = eventually(10, || async {
        let c = s
            .admin(reqwest::Method::GET, "/counters", Value::Null)
            .await;
        (c["webhook_itr_passed"] == false).then_some(c)
    })
    .await;
    assert_eq!(counters["webhooks_delivered"], 0);
    assert_eq!(
        st.lock().unwrap().events,
        0,
        "no events before the handshake passes"
    );
}
