use clarity_sim::model::SalesOrder;
use clarity_sim::send::{SendConfig, Sender};
use clarity_sim::serve::{self, SalesOrderPage};
use clarity_sim::{Credentials, GenConfig, Generator, GroundTruth, Store};
use ledgerline_platform::standard_webhooks::{Secret, Verifier};
use std::sync::Arc;

fn creds() -> Credentials {
    Credentials {
        username: "resync".to_owned(),
        password: "s3cret pass".to_owned(),
    }
}

async fn start(store: Arc<Store>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, serve::router(store, creds()))
            .await
            .unwrap()
    });
    base
}

fn client() -> reqwest::Client {
    clarity_sim::send::install_crypto_provider();
    ledgerline_platform::tls::http_client("test").unwrap()
}

async fn page(c: &reqwest::Client, base: &str, query: &[(&str, String)]) -> SalesOrderPage {
    let resp = c
        .get(format!("{base}/Ordering/SalesOrders"))
        .basic_auth("resync", Some("s3cret pass"))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn paging_modified_since_and_basic_auth() {
    let events = Generator::new(9, GenConfig::new("main", 45)).events();
    let store = Arc::new(Store::from_events(&events).unwrap());
    let base = start(store.clone()).await;
    let c = client();

    // Basic auth is required and checked.
    let none = c
        .get(format!("{base}/Ordering/SalesOrders"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = c
        .get(format!("{base}/Ordering/SalesOrders"))
        .basic_auth("resync", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // Paging walks every order exactly once, in UpdatedDate order.
    let mut all: Vec<SalesOrder> = Vec::new();
    let mut start_index = 0;
    loop {
        let p = page(
            &c,
            &base,
            &[
                ("Paging.StartIndex", start_index.to_string()),
                ("Paging.Size", "10".into()),
            ],
        )
        .await;
        assert_eq!(p.total_count, 45);
        assert!(p.results.len() <= 10);
        if p.results.is_empty() {
            break;
        }
        start_index += p.results.len();
        all.extend(p.results);
    }
    assert_eq!(all.len(), 45);
    assert!(
        all.windows(2)
            .all(|w| (w[0].updated_date, w[0].id) <= (w[1].updated_date, w[1].id))
    );
    let state = store.snapshot();
    for o in &all {
        assert_eq!(o, &state.orders[&o.id], "REST serves the latest version");
    }

    // ModifiedSince is inclusive and filters on UpdatedDate.
    let cut = all[30].updated_date;
    let since = page(
        &c,
        &base,
        &[
            ("ModifiedSince", cut.to_rfc3339()),
            ("Paging.Size", "500".into()),
        ],
    )
    .await;
    let expected = all.iter().filter(|o| o.updated_date >= cut).count();
    assert_eq!(since.total_count, expected);
    assert!(since.results.iter().all(|o| o.updated_date >= cut));
    let bad = c
        .get(format!(
            "{base}/Ordering/SalesOrders?ModifiedSince=yesterday"
        ))
        .basic_auth("resync", Some("s3cret pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // One order by id; unknown ids are 404.
    let one: SalesOrder = c
        .get(format!("{base}/Ordering/SalesOrder/ID/{}", all[0].id))
        .basic_auth("resync", Some("s3cret pass"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, all[0]);
    let missing = c
        .get(format!("{base}/Ordering/SalesOrder/ID/999999"))
        .basic_auth("resync", Some("s3cret pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Ground truth over HTTP equals the library's.
    let truth: GroundTruth = c
        .get(format!("{base}/ground-truth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth, GroundTruth::from_events(&events).unwrap());
}

#[tokio::test]
async fn rest_agrees_with_what_was_sent() {
    let secret = Secret::from_bytes(&[3u8; 24]).unwrap();
    let rx = crate::receiver::Receiver::start(Verifier::new(vec![secret.clone()])).await;
    let events = Generator::new(13, GenConfig::new("main", 20)).events();
    let store = Arc::new(Store::new());
    let base = start(store.clone()).await;
    let c = client();
    assert_eq!(
        page(&c, &base, &[]).await.total_count,
        0,
        "nothing sent yet, nothing served"
    );
    let report = Sender::new(SendConfig::new(&rx.url, secret))
        .unwrap()
        .with_store(store.clone())
        .send(&events)
        .await;
    assert_eq!(report.delivered, events.len());
    assert_eq!(page(&c, &base, &[]).await.total_count, 20);
    let truth: GroundTruth = c
        .get(format!("{base}/ground-truth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth, GroundTruth::from_events(&events).unwrap());
}
