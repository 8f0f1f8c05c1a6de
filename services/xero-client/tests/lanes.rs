//! Priority lanes against xero-sandbox over HTTP: live calls and background calls (backfill,
//! reconciler polling) both saturate the budget; live keeps its share, background gets at
//! most its cap, and Xero never answers 429.

use ledgerline_xero_client::budget::{Breaker, Budget, Lane, Limits, in_lane};
use ledgerline_xero_client::{Client, Endpoint};
use reqwest::Method;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Xero's minute, scaled to this many milliseconds.
const MINUTE_MS: u64 = 1000;
/// Our budget per minute window, under the sandbox's 60.
const MINUTE: u32 = 40;
/// Background's share: 10 calls of each window.
const SHARE: f64 = 0.25;
const CAP: u32 = 10;

#[tokio::test]
async fn live_keeps_its_share_while_background_gets_at_most_its_cap() {
    ledgerline_platform::tls::install_crypto_provider();
    let mut cfg = xero_sandbox::Config::for_tests();
    cfg.time_scale = 60_000.0 / MINUTE_MS as f64;
    let admin = cfg.admin_token.clone();
    let sandbox = xero_sandbox::Sandbox::build(cfg).unwrap();
    let tenant = sandbox.tenant_ids()[0].to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { sandbox.run(listener, std::future::pending()).await });
    let http = ledgerline_platform::tls::http_client("test").unwrap();
    let endpoint = Endpoint {
        http: http.clone(),
        api_url: format!("{base}/api.xro/2.0"),
        identity_url: base.clone(),
        client_id: "ledgerline-sandbox".into(),
        client_secret: "sandbox-secret".into(),
        timeout: Duration::from_secs(10),
        scopes: String::new(),
    };
    let limits = Limits {
        minute: MINUTE,
        day: 100_000,
        concurrent: 5,
        minute_window: Duration::from_millis(MINUTE_MS),
        day_window: Duration::from_secs(86_400),
    };
    let cancel = CancellationToken::new();
    let client = Arc::new(Client::new(
        endpoint,
        &tenant,
        None,
        Arc::new(Budget::new(&tenant, limits).background_share(SHARE)),
        Arc::new(Breaker::new(&tenant, 5, Duration::from_secs(30))),
        cancel.clone(),
    ));
    let (live, background) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut tasks = Vec::new();
    // Four callers in each lane, each calling as fast as the budget lets it.
    for lane in [
        Lane::Live,
        Lane::Backfill,
        Lane::Reconcile,
        Lane::Live,
        Lane::Backfill,
        Lane::Live,
        Lane::Reconcile,
        Lane::Live,
    ] {
        let (client, cancel) = (client.clone(), cancel.clone());
        let count = if lane.is_background() {
            background.clone()
        } else {
            live.clone()
        };
        tasks.push(tokio::spawn(in_lane(lane, async move {
            while !cancel.is_cancelled() {
                if client
                    .call(Method::GET, "/Organisation", &[], None)
                    .await
                    .is_ok()
                {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        })));
    }
    // The first call starts the windows; five of them, then stop.
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(5 * MINUTE_MS + MINUTE_MS / 2)).await;
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    // Windows begun: our windows are a little longer than Xero's (the dead zone).
    let windows = (elapsed.as_millis() as u64).div_ceil(MINUTE_MS) as u32;
    let (live, background) = (
        live.load(Ordering::SeqCst),
        background.load(Ordering::SeqCst),
    );
    println!(
        "{windows} windows in {elapsed:?}: live {live} calls, background {background} (cap {CAP} a window)"
    );
    assert!(
        background <= CAP * windows,
        "background took {background} calls in {windows} windows (cap {CAP})"
    );
    assert!(
        background >= CAP * (windows - 2),
        "background was starved: {background}"
    );
    assert!(
        live >= (MINUTE - CAP) * (windows - 2),
        "live got {live} calls in {windows} windows"
    );
    let counters: serde_json::Value = http
        .get(format!("{base}/admin/counters"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["throttled"], 0, "{counters}");
    assert!(
        counters["statuses"]["200"].as_u64() >= Some(u64::from(live + background)),
        "{counters}"
    );
}
