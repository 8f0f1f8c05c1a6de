//! The service against a real nats-server: publishing, dedup of redeliveries, every DLQ reason
//! class (with the consumer going on after each), and mapping reloads.

use crate::helpers::*;
use ledgerline_contract::v1::{DeadLetter, OrderEvent, ReasonClass, Stage};
use ledgerline_contract::{Schema, headers};
use prost::Message as _;

#[tokio::test]
async fn publishes_canonical_events_once_per_raw_event() {
    let stack = Stack::start(&[]).await;
    stack
        .publish_raw("evt_a", "sales_order.created", order_body("evt_a"))
        .await;
    assert!(
        eventually(WAIT, || async {
            stack.count("ORDERS").await == 1 && stack.count("CUSTOMERS").await == 1
        })
        .await
    );
    let orders = stack.messages("ORDERS").await;
    let m = &orders[0];
    // The order's id and number are in the subject: one order's events read by subject.
    assert_eq!(m.subject.as_str(), "orders.main.created.1042.SO-001042");
    assert_eq!(
        m.headers.get(headers::SCHEMA).map(|v| v.as_str()),
        Some(OrderEvent::NAME)
    );
    let id = m.headers.get(headers::MSG_ID).unwrap().as_str().to_owned();
    assert!(id.starts_with("evt_a.order@"), "{id}");
    let e = OrderEvent::decode(m.payload.clone()).unwrap();
    let meta = e.meta.unwrap();
    assert_eq!(meta.source_event_id, "evt_a");
    // Where the webhook is in RAW: the first message there.
    assert_eq!(meta.raw_sequence, 1);
    assert!(id.ends_with(&meta.mapping_revision));
    assert_eq!(e.order.unwrap().version, 1);

    // The same webhook stored in RAW again (past RAW's dedup, e.g. a resync): nothing new.
    stack
        .publish_raw("evt_a-again", "sales_order.created", order_body("evt_a"))
        .await;
    assert!(
        eventually(WAIT, || async {
            stack
                .metrics()
                .await
                .contains("ledgerline_normalizer_events_total{result=\"duplicate\"} 2")
        })
        .await
    );
    assert_eq!(stack.count("ORDERS").await, 1);
    assert_eq!(stack.count("CUSTOMERS").await, 1);
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("ledgerline_mapping_revision_info"),
        "{metrics}"
    );
    // SIGTERM: drain and exit 0.
    let mut stack = stack;
    let status = stack
        .normalizer
        .terminate(std::time::Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        stack.normalizer.output()
    );
}

async fn dead_letters(stack: &Stack) -> Vec<DeadLetter> {
    stack
        .messages("DLQ")
        .await
        .into_iter()
        .map(|m| DeadLetter::decode(m.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn every_reason_class_is_dead_lettered_and_the_consumer_goes_on() {
    let stack = Stack::start(&[]).await;
    let cases: [(&str, &str, Vec<u8>, ReasonClass); 4] = [
        (
            "evt_m",
            "sales_order.created",
            b"{not json".to_vec(),
            ReasonClass::Malformed,
        ),
        (
            "evt_i",
            "sales_order.created",
            example("err_totals_identity.json"),
            ReasonClass::Invalid,
        ),
        (
            "evt_u",
            "sales_order.deleted",
            example("err_unknown_type.json"),
            ReasonClass::Unsupported,
        ),
        (
            "evt_t",
            "sales_order.created",
            example("err_unknown_tax_code.json"),
            ReasonClass::Mapping,
        ),
    ];
    for (n, (id, topic, body, reason)) in cases.into_iter().enumerate() {
        stack.publish_raw(id, topic, body.clone()).await;
        // A good event right behind the bad one is still normalised.
        let good = format!("evt_good_{n}");
        stack
            .publish_raw(&good, "sales_order.created", order_body(&good))
            .await;
        assert!(
            eventually(WAIT, || async {
                stack.count("DLQ").await == n as u64 + 1
                    && stack.count("ORDERS").await == n as u64 + 1
            })
            .await,
            "{reason:?}: {}",
            stack.normalizer.output()
        );
        let dl = dead_letters(&stack).await.pop().unwrap();
        assert_eq!(dl.reason_class(), reason);
        assert_eq!(dl.stage(), Stage::Normalizer);
        assert_eq!(dl.original_subject, format!("raw.clarity.main.{topic}"));
        assert_eq!(dl.original_payload, body);
        assert_eq!(
            dl.original_headers.get("Webhook-Id").map(String::as_str),
            Some(id)
        );
        assert_eq!(dl.store, "main");
        assert!(!dl.error.is_empty());
        // Contract v2: where the original is, and what is at fault.
        assert_eq!(dl.contract_version, 2);
        assert_eq!(dl.original_stream, "RAW");
        let raw = stack
            .js
            .get_stream("RAW")
            .await
            .unwrap()
            .get_raw_message(dl.original_sequence)
            .await
            .unwrap();
        assert_eq!(raw.payload, body, "the sequence names the original");
        assert_eq!(dl.original_size, body.len() as u64);
        assert!(!dl.payload_truncated);
        let fault = dl.fault.clone().unwrap();
        if reason == ReasonClass::Mapping {
            let s = &dl.suggestions[0];
            assert_eq!(s.field, "tax_codes.GST12");
            assert!(s.suggested_value.contains("OUTPUT2"), "{s:?}");
            assert_eq!(
                s.rule, "[tax_codes.\"GST12\"]\nrate = \"0.15\"\ntax_type = \"OUTPUT2\"\n",
                "the rule that applies it"
            );
            assert_eq!(
                (
                    fault.code.as_str(),
                    fault.field.as_str(),
                    fault.value.as_str()
                ),
                ("unknown_tax_code", "tax_code", "GST12")
            );
        } else {
            assert_eq!(
                fault.code,
                ledgerline_platform::dead_letter::reason_label(reason)
            );
        }
    }
    let dlq = stack.messages("DLQ").await;
    assert_eq!(dlq[0].subject.as_str(), "dlq.normalizer.malformed");
    assert_eq!(dlq[3].subject.as_str(), "dlq.normalizer.mapping");
    let metrics = stack.metrics().await;
    for r in ["malformed", "invalid", "unsupported", "mapping"] {
        assert!(
            metrics.contains(&format!(
                "ledgerline_normalizer_dead_letters_total{{reason=\"{r}\"}} 1"
            )),
            "{r}: {metrics}"
        );
    }
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_after_max_deliver() {
    let stack = Stack::start(&[]).await;
    // The contract's consumer backs off for up to minutes between deliveries (and the server
    // applies that backoff over a nak's delay); this test shortens it to see all attempts.
    let spec = ledgerline_contract::consumers::normalizer();
    let mut config = spec.config();
    config.backoff = vec![];
    config.ack_wait = std::time::Duration::from_secs(2);
    let raw = stack.js.get_stream("RAW").await.unwrap();
    raw.create_consumer(config).await.unwrap();
    // Without ORDERS every publish of an order event fails: a transient failure that never heals.
    stack.js.delete_stream("ORDERS").await.unwrap();
    stack
        .publish_raw(
            "evt_poison",
            "sales_order.created",
            order_body("evt_poison"),
        )
        .await;
    assert!(
        eventually(WAIT, || async { stack.count("DLQ").await == 1 }).await,
        "{}",
        stack.normalizer.output()
    );
    let dl = dead_letters(&stack).await.pop().unwrap();
    assert_eq!(dl.reason_class(), ReasonClass::Exhausted);
    assert_eq!(
        dl.attempts as i64,
        ledgerline_contract::consumers::normalizer().max_deliver
    );
    // The stream goes on: an account event (CUSTOMERS still exists) is normalised.
    stack
        .publish_raw(
            "evt_acct",
            "account.updated",
            example("example_account_updated.json"),
        )
        .await;
    assert!(eventually(WAIT, || async { stack.count("CUSTOMERS").await == 1 }).await);
}

#[tokio::test]
async fn mapping_reloads_from_file_and_overlay_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, "[accounts]\nproduct = \"200\"\n").unwrap();
    let stack = Stack::start(&["--mapping", file.to_str().unwrap()]).await;
    let revision = |s: String| {
        s.lines()
            .find(|l| l.starts_with("ledgerline_mapping_revision_info") && l.ends_with(" 1"))
            .map(|l| l.split('"').nth(1).unwrap().to_owned())
    };
    let first = revision(stack.metrics().await).expect("revision metric");
    // A file edit: the revision changes.
    std::fs::write(&file, "[lines]\nunallocated_discount = \"allocate\"\n").unwrap();
    let second = changed_revision(&stack, &revision, Some(first.clone())).await;
    // A broken edit is rejected and the previous mapping stays.
    std::fs::write(&file, "[lines]\nunallocated_discount = \"spread\"\n").unwrap();
    assert!(
        eventually(WAIT, || async {
            stack
                .normalizer
                .output()
                .contains("Mapping reload rejected")
        })
        .await
    );
    assert!(stack.normalizer.output().contains("unallocated_discount"));
    assert_eq!(revision(stack.metrics().await), second);
    // The KV overlay wins over the file.
    std::fs::write(&file, "[lines]\nunallocated_discount = \"allocate\"\n").unwrap();
    let kv = stack.js.get_key_value("mapping_overlay").await.unwrap();
    kv.put("0001-accounts", "[accounts]\nshipping = \"215\"\n".into())
        .await
        .unwrap();
    let third = changed_revision(&stack, &revision, second.clone()).await;
    // Events carry the revision in force.
    stack
        .publish_raw("evt_rev", "sales_order.created", order_body("evt_rev"))
        .await;
    assert!(eventually(WAIT, || async { stack.count("ORDERS").await == 1 }).await);
    let m = &stack.messages("ORDERS").await[0];
    let e = OrderEvent::decode(m.payload.clone()).unwrap();
    assert_eq!(Some(e.meta.unwrap().mapping_revision), third);
}

/// Polls the metrics until the revision in force differs from `old`.
async fn changed_revision(
    stack: &Stack,
    revision: &impl Fn(String) -> Option<String>,
    old: Option<String>,
) -> Option<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = revision(stack.metrics().await);
        if now.is_some() && now != old {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revision never changed from {old:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
