//! The operator's page in a real headless Chromium (Debian's chromium and chromium-driver):
//! sign in, find the tax-code issue, apply its first suggestion in one click and watch the
//! order written to Xero; the order's timeline across every stage; CSRF on writes; a viewer's
//! masked, read-only page. Screenshots go to `target/test-artifacts/`.

use crate::helpers::*;
use fantoccini::{Locator, elements::Element};
use ledgerline_testkit::browser::Browser;
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded";

fn form(fields: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn text(e: &Element) -> String {
    e.text().await.unwrap_or_default()
}

async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(text(&e).await);
    }
    out
}

async fn one_order_in_review(order_id: u64) -> Stack {
    let stack = Stack::start(Options {
        pipeline: true,
        // The page links to the reconciler (nothing needs to answer there for the links).
        env: vec![(
            "DEAD_LETTER_RECONCILER_URL".into(),
            "http://127.0.0.1:8095/".into(),
        )],
        ..Default::default()
    })
    .await;
    let event = format!("evt_page_{order_id}");
    stack
        .publish_raw(
            &event,
            "sales_order.created",
            order(&event, order_id, "GST12"),
        )
        .await;
    assert!(
        eventually(WAIT, || async { stack.issues().await.len() == 1 }).await,
        "{}",
        stack.output()
    );
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_fixes_the_tax_code_in_one_click_and_sees_the_invoice_written() {
    let stack = one_order_in_review(5101).await;
    let b = Browser::start().await;
    let c = &b.client;
    sign_in(&b, &stack, OPERATOR).await;

    // The queue: the issue with its count and store, the entry below it.
    let issues = texts(&b, "table.issues tbody tr").await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("normalizer/unknown_tax_code/tax_code/GST12")
            && issues[0].contains("main"),
        "{issues:?}"
    );
    assert!(texts(&b, "p.summary").await[0].contains("1 open entries in 1 issues"));
    b.screenshot("dead-letter-queue").await;

    // Search by order number finds it; open the entry.
    c.find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("SO-005101")
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The queue already lists the order: wait for the search's page, not the old one's link.
    assert!(
        eventually(Duration::from_secs(10), || async {
            c.current_url()
                .await
                .is_ok_and(|u| u.query().is_some_and(|q| q.contains("SO-005101")))
        })
        .await,
        "the search page loads"
    );
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::LinkText("SO-005101"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("ol.suggestions"))
        .await
        .unwrap();
    let suggestion = texts(&b, "ol.suggestions li").await;
    assert!(suggestion[0].contains("OUTPUT2"), "{suggestion:?}");
    // An operator reads the payload whole (viewers get it masked: the next test).
    assert!(texts(&b, "pre.payload").await[0].contains("jane.doe@example.co.nz"));
    b.screenshot("dead-letter-entry").await;

    // One click: the rule is applied, the entry replayed, and the page follows it until the
    // invoice is written.
    c.find(Locator::Css("ol.suggestions li form button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let live = c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#live[data-state=done]"))
        .await
        .unwrap_or_else(|e| panic!("never written: {e}\n{}", stack.output()));
    let said = text(&live).await;
    assert!(
        said.contains("written to Xero: invoice SO-005101"),
        "the page names the invoice: {said}"
    );
    assert!(texts(&b, "p.notice").await[0].contains("Rule applied"));
    b.screenshot("dead-letter-entry-resolved").await;
    assert_eq!(stack.invoices_of("SO-005101").await, 1, "exactly once");

    // The order's timeline: the webhook, its events, the write to Xero, and the review.
    c.find(Locator::LinkText("timeline"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("ol.timeline"))
        .await
        .unwrap();
    let kinds = texts(&b, "ol.timeline .kind").await;
    for k in ["WEBHOOK", "EVENT", "XERO", "REVIEW"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let steps = texts(&b, "ol.timeline li").await.join("\n");
    assert!(steps.contains("invoice created SO-005101"), "{steps}");
    assert!(steps.contains("order created (version"), "{steps}");
    // The reconciler: its report in the header, its view of this order on the timeline.
    let href = |text: &'static str| async move {
        c.find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .attr("href")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    assert_eq!(
        href("Reconciliation report").await,
        "http://127.0.0.1:8095/report"
    );
    assert_eq!(
        href("The reconciler's view of this order").await,
        "http://127.0.0.1:8095/v1/orders/main/5101"
    );
    b.screenshot("dead-letter-timeline").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_csrf_token_and_a_viewer_sees_masked_data_and_no_buttons() {
    let stack = Stack::start(Options::default()).await;
    publish_dead_letter_at(&stack.js, true, "main", 7201, "GST0", 0).await;
    assert!(
        eventually(WAIT, || async { stack.issues().await.len() == 1 }).await,
        "{}",
        stack.output()
    );
    let id = stack.issues().await[0]["sample_entry"]
        .as_str()
        .unwrap()
        .to_owned();

    // A session's write without its CSRF token is refused, and changes nothing.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(stack.url("/ui/login"))
        .header("content-type", FORM)
        .body(form(&[("token", OPERATOR)]))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain HTTP, no proxy: not Secure ({set})"
    );
    let session = set.split(';').next().unwrap().to_owned();
    let replay = |csrf: Option<&str>| {
        let fields: Vec<(&str, &str)> = csrf.map(|t| ("_csrf", t)).into_iter().collect();
        http.post(stack.url(&format!("/ui/entries/{id}/replay")))
            .header("cookie", &session)
            .header("content-type", FORM)
            .body(form(&fields))
            .send()
    };
    assert_eq!(replay(None).await.unwrap().status(), 403);
    assert_eq!(
        replay(Some("0123456789abcdef")).await.unwrap().status(),
        403
    );
    assert_eq!(stack.entry(&id).await["replays"], 0, "nothing was replayed");
    // Behind a TLS-terminating proxy the cookie is Secure (DEAD_LETTER_COOKIE_SECURE=auto).
    let proxied = http
        .post(stack.url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .header("content-type", FORM)
        .body(form(&[("token", OPERATOR)]))
        .send()
        .await
        .unwrap();
    assert!(
        proxied.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // A viewer: customer data masked, and no button that writes.
    let b = Browser::start().await;
    sign_in(&b, &stack, VIEWER).await;
    assert!(
        texts(&b, "input[name=ids]").await.is_empty(),
        "no bulk selection"
    );
    let customer = texts(&b, "table.entries tbody td").await.join(" ");
    assert!(customer.contains("b•••@"), "masked: {customer}");
    b.client
        .goto(&stack.url(&format!("/ui/entries/{id}")))
        .await
        .unwrap();
    let page = text(&b.client.find(Locator::Css("main")).await.unwrap()).await;
    assert!(
        !page.contains("buyer7201@"),
        "no email in the viewer's page: {page}"
    );
    assert!(page.contains("1•••"), "the address is masked: {page}");
    let buttons = texts(&b, "main button").await;
    assert!(
        buttons.is_empty(),
        "a viewer has no write buttons: {buttons:?}"
    );
    b.screenshot("dead-letter-entry-viewer").await;
    b.close().await;
}
