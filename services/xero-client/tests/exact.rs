//! Amounts through the client over HTTP against xero-sandbox: exact to the last digit.

use ledgerline_xero_client::budget::{Breaker, Budget, Limits};
use ledgerline_xero_client::{Client, Element, Endpoint, Need};
use reqwest::Method;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn sandbox() -> (String, String) {
    ledgerline_platform::tls::install_crypto_provider();
    let sandbox = xero_sandbox::Sandbox::build(xero_sandbox::Config::for_tests()).unwrap();
    let tenant = sandbox.tenant_ids()[0].to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { sandbox.run(listener, std::future::pending()).await });
    (base, tenant)
}

#[tokio::test]
async fn an_invoice_with_twenty_significant_digits_comes_back_exactly() {
    let (base, tenant) = sandbox().await;
    let endpoint = Endpoint {
        http: ledgerline_platform::tls::http_client("test").unwrap(),
        api_url: format!("{base}/api.xro/2.0"),
        identity_url: base.clone(),
        client_id: "ledgerline-sandbox".into(),
        client_secret: "sandbox-secret".into(),
        timeout: Duration::from_secs(10),
        scopes: String::new(),
    };
    let limits = Limits {
        minute: 60,
        day: 5_000,
        concurrent: 5,
        minute_window: Duration::from_secs(60),
        day_window: Duration::from_secs(86_400),
    };
    let client = Client::new(
        endpoint,
        &tenant,
        None,
        Arc::new(Budget::new(&tenant, limits)),
        Arc::new(Breaker::new(&tenant, 5, Duration::from_secs(30))),
        CancellationToken::new(),
    );
    // 20 significant digits: an f64 keeps about 16.
    let big = "123456789012345678.91";
    let body = format!(
        r#"{{"Invoices":[{{"Type":"ACCREC","Contact":{{"Name":"Exact Ltd"}},"Date":"2026-11-20","DueDate":"2026-12-20","LineAmountTypes":"NoTax","Status":"AUTHORISED","LineItems":[{{"Description":"Everything","Quantity":1,"UnitAmount":{big},"AccountCode":"200","TaxType":"NONE"}}]}}]}}"#
    );
    let v = client
        .call(
            Method::PUT,
            "/Invoices",
            &[("summarizeErrors", "false".into())],
            Some(body.into_bytes()),
        )
        .await
        .expect("invoice created");
    let inv = &v.invoices[0];
    assert!(inv.ok(), "{inv:?}");
    let want = Decimal::from_str(big).unwrap();
    assert_eq!(inv.total.need("Total").unwrap(), want, "{inv:?}");
    assert_eq!(inv.line_items[0].line_amount, Some(want));
    assert!(
        (want.to_string().parse::<f64>().unwrap() as i128) != 123_456_789_012_345_678,
        "the amount is one an f64 cannot hold"
    );
    // Read back with GET as well.
    let id = &inv.invoice_id;
    let again = client
        .call(Method::GET, &format!("/Invoices/{id}"), &[], None)
        .await
        .unwrap();
    assert_eq!(again.invoices[0].amount_due, Some(want));
}
