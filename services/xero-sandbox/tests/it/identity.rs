use crate::util::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn client_credentials_token_lists_connections_and_reaches_the_api() {
    let s = TestSandbox::start().await;
    let r = s
        .client
        .get(format!("{}/connections", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let conns: Value = r.json().await.unwrap();
    assert_eq!(conns[0]["tenantId"], s.tenants[0].to_string());
    assert_eq!(conns[0]["tenantType"], "ORGANISATION");
    // A custom connection may omit xero-tenant-id.
    let r = s
        .client
        .get(s.url("/Organisation"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn token_endpoint_accepts_form_credentials_and_rejects_bad_clients() {
    let s = TestSandbox::start().await;
    let ok = s
        .client
        .post(format!("{}/connect/token", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=ledgerline-sandbox&client_secret=sandbox-secret")
        .send()
        .await
        .unwrap();
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["expires_in"], 1800);
    assert_eq!(v["token_type"], "Bearer");
    let bad = s
        .client
        .post(format!("{}/connect/token", s.base))
        .basic_auth("ledgerline-sandbox", Some("wrong"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
}

#[tokio::test]
async fn missing_and_expired_tokens_get_401_problem_json() {
    let s = TestSandbox::start().await;
    let r = s.client.get(s.url("/Invoices")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Detail"], "AuthorizationUnsuccessful");
    assert_eq!(v["Title"], "Unauthorized");

    // Access tokens live 1800 s; at time scale 3600 that is half a second.
    s.settings(json!({"time_scale": 3600.0})).await;
    let token = s.client_credentials().await;
    let v: Value = eventually(10, || async {
        let r = s
            .client
            .get(s.url("/Organisation"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            Some(r.json().await.unwrap())
        } else {
            None
        }
    })
    .await;
    assert!(
        v["Detail"].as_str().unwrap().starts_with("TokenExpired: "),
        "{v}"
    );
}

#[tokio::test]
async fn unknown_or_disconnected_tenant_gets_403() {
    let mut c = config();
    c.tenants = 2;
    let s = TestSandbox::start_with(c).await;
    let r = s
        .client
        .get(s.url("/Organisation"))
        .bearer_auth(&s.token)
        .header("xero-tenant-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Detail"], "AuthenticationUnsuccessful");

    // Authorization-code tokens reach every consented tenant and need the header.
    let (token, _) = auth_code(&s).await;
    let r = s
        .client
        .get(s.url("/Organisation"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "header is required for auth-code tokens");
    for t in &s.tenants {
        let r = s
            .client
            .get(s.url("/Organisation"))
            .bearer_auth(&token)
            .header("xero-tenant-id", t.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let conns: Value = s
        .client
        .get(format!("{}/connections", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conns.as_array().unwrap().len(), 2);
    let second = conns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tenantId"] == s.tenants[1].to_string())
        .unwrap();
    let r = s
        .client
        .delete(format!(
            "{}/connections/{}",
            s.base,
            second["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .client
        .get(s.url("/Organisation"))
        .bearer_auth(&token)
        .header("xero-tenant-id", s.tenants[1].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let conns: Value = s
        .client
        .get(format!("{}/connections", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conns.as_array().unwrap().len(), 1);
}

async fn auth_code(s: &TestSandbox) -> (String, String) {
    auth_code_with(
        s,
        "offline_access%20accounting.settings%20accounting.invoices%20accounting.payments",
    )
    .await
}

async fn auth_code_with(s: &TestSandbox, scope: &str) -> (String, String) {
    let r = s
        .client
        .get(format!("{}/identity/authorize?response_type=code&client_id=ledgerline-sandbox&redirect_uri=http://localhost/cb&scope={scope}&state=xyz", s.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with("http://localhost/cb?code=") && loc.ends_with("&state=xyz"),
        "{loc}"
    );
    let code = loc
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let v = token_call(
        s,
        &format!("grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb"),
    )
    .await
    .1;
    // The code is single-use.
    let again = token_call(
        s,
        &format!("grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb"),
    )
    .await;
    assert_eq!(again.0, 400);
    (
        v["access_token"].as_str().unwrap().into(),
        v["refresh_token"].as_str().unwrap().into(),
    )
}

async fn token_call(s: &TestSandbox, body: &str) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}/connect/token", s.base))
        .basic_auth("ledgerline-sandbox", Some("sandbox-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn refresh_tokens_rotate_with_a_grace_period_then_invalid_grant() {
    let s = TestSandbox::start().await;
    let (_, rt1) = auth_code(&s).await;
    let (st, v) = token_call(&s, &format!("grant_type=refresh_token&refresh_token={rt1}")).await;
    assert_eq!(st, 200);
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    // The previous token still works within the grace period (a lost response can be retried).
    let (st, _) = token_call(&s, &format!("grant_type=refresh_token&refresh_token={rt1}")).await;
    assert_eq!(st, 200);
    // 30 minutes of grace at time scale 3600 is half a second.
    s.settings(json!({"time_scale": 3600.0})).await;
    let (_, rt3) = auth_code(&s).await;
    let (st, _) = token_call(&s, &format!("grant_type=refresh_token&refresh_token={rt3}")).await;
    assert_eq!(st, 200);
    let v = eventually(10, || async {
        let (st, v) =
            token_call(&s, &format!("grant_type=refresh_token&refresh_token={rt3}")).await;
        (st == 400).then_some(v)
    })
    .await;
    assert_eq!(v["error"], "invalid_grant");
    let (st, _) = token_call(&s, "grant_type=refresh_token&refresh_token=nope").await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_grant() {
    let s = TestSandbox::start().await;
    let (_, rt) = auth_code(&s).await;
    let r = s
        .client
        .post(format!("{}/connect/revocation", s.base))
        .basic_auth("ledgerline-sandbox", Some("sandbox-secret"))
        .body(format!("token={rt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = token_call(&s, &format!("grant_type=refresh_token&refresh_token={rt}")).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn scopes_limit_what_a_token_may_call() {
    let s = TestSandbox::start().await;
    let (token, _) = auth_code_with(
        &s,
        "offline_access%20accounting.settings.read%20accounting.invoices",
    )
    .await;
    let call = |m: reqwest::Method, path: &str| {
        let r = s
            .client
            .request(m, s.url(path))
            .bearer_auth(&token)
            .header("xero-tenant-id", s.tenants[0].to_string());
        async move { r.send().await.unwrap() }
    };
    assert_eq!(call(Method::GET, "/Organisation").await.status(), 200);
    assert_eq!(
        call(Method::GET, "/Invoices").await.status(),
        200,
        "granular accounting.invoices"
    );
    let r = call(Method::GET, "/Contacts").await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Detail"], "AuthorizationUnsuccessful");
    assert_eq!(call(Method::GET, "/Payments").await.status(), 401);
    assert_eq!(
        call(Method::PUT, "/Currencies").await.status(),
        401,
        "settings.read cannot write"
    );
}

#[tokio::test]
async fn a_granular_app_refuses_broad_scopes_and_an_old_app_still_takes_them() {
    // A new app (the default), as every app made from 2 March 2026 is.
    let s = TestSandbox::start().await;
    let (status, v) = token_call(
        &s,
        "grant_type=client_credentials&client_id=ledgerline-sandbox&client_secret=sandbox-secret&scope=accounting.transactions%20accounting.contacts",
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_scope")));
    let r = s
        .client
        .get(format!("{}/identity/authorize?response_type=code&client_id=ledgerline-sandbox&redirect_uri=http://localhost/cb&scope=offline_access%20accounting.transactions&state=xyz", s.base))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(loc, "http://localhost/cb?error=invalid_scope&state=xyz");
    // Granular scopes are granted; asking for none gives every granular scope.
    let (status, v) = token_call(
        &s,
        "grant_type=client_credentials&client_id=ledgerline-sandbox&client_secret=sandbox-secret",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !v["scope"].as_str().unwrap().contains("transactions"),
        "{v}"
    );
    let (token, _) = auth_code(&s).await;
    let r = s
        .client
        .get(s.url("/Payments"))
        .bearer_auth(&token)
        .header("xero-tenant-id", s.tenants[0].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // An app made before March 2026 may still ask for the broad scope, and it reaches
    // invoices and payments.
    let mut c = config();
    c.app_kind = "broad".into();
    let old = TestSandbox::start_with(c).await;
    let (token, _) = auth_code_with(
        &old,
        "offline_access%20accounting.transactions%20accounting.contacts",
    )
    .await;
    for path in ["/Invoices", "/Payments", "/CreditNotes"] {
        let r = old
            .client
            .get(old.url(path))
            .bearer_auth(&token)
            .header("xero-tenant-id", old.tenants[0].to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}
