use crate::helpers::*;
use ledgerline_platform::standard_webhooks::unix_now;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn stores_a_signed_webhook_with_its_headers() {
    let stack = Stack::start(&[]);
    let d = order_created("evt_store_1");
    let resp = stack.send("main", &d).await;
    assert_eq!(resp.status(), 202);

    let js = stack.js().await;
    let stream = js.get_stream("RAW").await.unwrap();
    let msg = stream
        .get_last_raw_message_by_subject("raw.clarity.main.sales_order.created")
        .await
        .unwrap();
    assert_eq!(
        msg.payload.as_ref(),
        d.body.as_slice(),
        "the exact bytes received are stored"
    );
    let h = msg.headers;
    assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), "evt_store_1");
    assert_eq!(h.get("Webhook-Id").unwrap().as_str(), "evt_store_1");
    assert_eq!(
        h.get("X-Clarity-Topic").unwrap().as_str(),
        "sales_order.created"
    );
    assert_eq!(
        h.get("Ledgerline-Schema").unwrap().as_str(),
        "clarity.webhook.2026-11"
    );
    assert!(
        h.get("traceparent").is_some(),
        "the trace of an order starts here"
    );
    assert!(
        h.get("webhook-signature").is_none(),
        "signatures are not stored"
    );
}

#[tokio::test]
async fn ten_deliveries_of_one_event_store_one_message() {
    let stack = Stack::start(&[]);
    let d = order_created("evt_dup_1");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = stack.send("main", &d).await;
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(stack.raw_count().await, 1);
}

#[tokio::test]
async fn every_rejection_path_stores_nothing() {
    let stack = Stack::start(&["--max-body", "8KiB"]);
    let now = unix_now();
    let ok = order_created("evt_rej_ok");

    // Unknown store.
    assert_eq!(stack.send("nosuchstore", &ok).await.status(), 404);
    // Missing signature.
    let mut missing = order_created("evt_rej_missing");
    missing.headers.retain(|(k, _)| k != "webhook-signature");
    assert_eq!(stack.send("main", &missing).await.status(), 401);
    // Wrong key.
    let forged = signed(
        "evt_rej_forged",
        event_body("evt_rej_forged", "sales_order.created"),
        ROTATED,
        now,
    );
    assert_eq!(stack.send("main", &forged).await.status(), 401);
    // Body changed after signing.
    let mut tampered = order_created("evt_rej_tampered");
    tampered.body.extend_from_slice(b" ");
    assert_eq!(stack.send("main", &tampered).await.status(), 401);
    // Outside the ±300 s window, both ways (by a margin: the server reads its clock a moment later).
    let stale = signed(
        "evt_rej_stale",
        event_body("evt_rej_stale", "sales_order.created"),
        SECRET,
        now - 400,
    );
    assert_eq!(stack.send("main", &stale).await.status(), 401);
    let future = signed(
        "evt_rej_future",
        event_body("evt_rej_future", "sales_order.created"),
        SECRET,
        now + 400,
    );
    assert_eq!(stack.send("main", &future).await.status(), 401);
    // Over the body limit (signed correctly, so only the size is wrong).
    let mut big = event_body("evt_rej_big", "sales_order.created");
    big.extend(std::iter::repeat_n(b' ', 9 * 1024));
    assert_eq!(
        stack
            .send("main", &signed("evt_rej_big", big, SECRET, now))
            .await
            .status(),
        413
    );
    // Not JSON.
    assert_eq!(
        stack
            .send(
                "main",
                &signed("evt_rej_nj", b"not json".to_vec(), SECRET, now)
            )
            .await
            .status(),
        400
    );
    // Missing id, missing type, id differs from webhook-id, unknown type.
    let no_id = br#"{"type":"sales_order.created","data":{}}"#.to_vec();
    assert_eq!(
        stack
            .send("main", &signed("evt_rej_noid", no_id, SECRET, now))
            .await
            .status(),
        400
    );
    let no_type = br#"{"id":"evt_rej_notype","data":{}}"#.to_vec();
    assert_eq!(
        stack
            .send("main", &signed("evt_rej_notype", no_type, SECRET, now))
            .await
            .status(),
        400
    );
    let mismatch = event_body("evt_other", "sales_order.created");
    assert_eq!(
        stack
            .send("main", &signed("evt_rej_mismatch", mismatch, SECRET, now))
            .await
            .status(),
        400
    );
    let unknown = event_body("evt_rej_type", "sales_order.exploded");
    assert_eq!(
        stack
            .send("main", &signed("evt_rej_type", unknown, SECRET, now))
            .await
            .status(),
        400
    );

    assert_eq!(stack.raw_count().await, 0, "no rejected webhook was stored");
    // And the good one still goes through afterwards.
    assert_eq!(stack.send("main", &ok).await.status(), 202);
    assert_eq!(stack.raw_count().await, 1);

    let (_, metrics) = stack.ingest.get("/metrics").unwrap();
    assert!(metrics.contains("outcome=\"bad_signature\""), "{metrics}");
    assert!(metrics.contains("outcome=\"too_large\""), "{metrics}");
}

#[tokio::test]
async fn a_rotated_secret_from_kv_is_accepted_without_restart() {
    let stack = Stack::start(&[]);
    let id = "evt_rotated_1";
    let d = signed(
        id,
        event_body(id, "sales_order.created"),
        ROTATED,
        unix_now(),
    );
    assert_eq!(stack.send("main", &d).await.status(), 401);

    let js = stack.js().await;
    let kv = js.get_key_value("ingest_secrets").await.unwrap();
    kv.put("main", format!("{SECRET} {ROTATED}").into())
        .await
        .unwrap();
    let accepted = eventually(Duration::from_secs(10), || async {
        let d = signed(
            id,
            event_body(id, "sales_order.created"),
            ROTATED,
            unix_now(),
        );
        stack.send("main", &d).await.status() == 202
    })
    .await;
    assert!(accepted, "the new secret was never accepted");
    // The old one is still live during the rotation.
    assert_eq!(
        stack
            .send("main", &order_created("evt_rotated_old"))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn nats_down_means_503_and_every_acknowledged_id_is_stored_exactly_once() {
    let mut stack = Stack::start(&[]);
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut saw_503 = false;
    for i in 0..60 {
        if i == 20 {
            stack.nats.stop();
        }
        if i == 40 {
            stack.nats.start_again();
            let ingest = &stack.ingest;
            assert!(
                ledgerline_testkit::wait_until(Duration::from_secs(20), || matches!(
                    ingest.get("/readyz"),
                    Ok((200, _))
                )),
                "ingest never became ready again"
            );
        }
        let id = format!("evt_burst_{i}");
        let resp = stack.send("main", &order_created(&id)).await;
        match resp.status().as_u16() {
            202 => {
                acknowledged.insert(id);
            }
            503 => {
                saw_503 = true;
                assert!(
                    resp.headers().get("retry-after").is_some(),
                    "503 carries Retry-After"
                );
                if (20..40).contains(&i) {
                    assert!(
                        matches!(stack.ingest.get("/readyz"), Ok((503, _))),
                        "not ready while NATS is down"
                    );
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(saw_503, "NATS was down for 20 requests");
    assert!(
        acknowledged.len() >= 40,
        "{} acknowledged",
        acknowledged.len()
    );

    // Every acknowledged id is in RAW exactly once.
    let js = stack.js().await;
    let mut stream = js.get_stream("RAW").await.unwrap();
    let count = stream.info().await.unwrap().state.messages;
    let mut stored = Vec::new();
    for seq in 1..=stream.info().await.unwrap().state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            stored.push(m.headers.get("Nats-Msg-Id").unwrap().as_str().to_owned());
        }
    }
    let unique: HashSet<_> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no id stored twice");
    assert_eq!(count as usize, stored.len());
    for id in &acknowledged {
        assert!(unique.contains(id), "{id} got a 2xx but is not stored");
    }
}
