//! Replay: without a mapping change nothing new is published; after one, every event is
//! published again under the new revision; a dry run publishes nothing and prints the diff.

use crate::helpers::*;
use std::process::Command;

fn replay(nats: &str, args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(["replay", "--store", "main", "--quiet"])
        .args(args)
        .env("NATS_URL", nats)
        .env_remove("LEDGERLINE_CONFIG")
        .output()
        .expect("replay runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test]
async fn replay_publishes_only_what_a_mapping_change_changed() {
    let stack = Stack::start(&[]).await;
    for i in 0..3 {
        let id = format!("evt_r{i}");
        stack
            .publish_raw(&id, "sales_order.created", order_body(&id))
            .await;
    }
    stack
        .publish_raw(
            "evt_racct",
            "account.updated",
            example("example_account_updated.json"),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            stack.count("ORDERS").await == 3 && stack.count("CUSTOMERS").await == 4
        })
        .await
    );
    let url = stack.nats.url();

    // Same mapping: nothing new.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || replay(&url, &["--from-seq", "1"])
    })
    .await
    .unwrap();
    assert!(
        out.contains("4 raw events → 7 canonical events") && out.contains(": 0 new"),
        "{out}"
    );
    assert_eq!(stack.count("ORDERS").await, 3);

    // A changed mapping, dry: a diff, and nothing published.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, "[[tracking]]\nname = \"Sales Channel\"\nattribute = \"Channel\"\ndefault = \"Web Store\"\n").unwrap();
    let path = file.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking({
        let (url, path) = (url.clone(), path.clone());
        move || replay(&url, &["--from-seq", "1", "--dry-run", "--mapping", &path])
    })
    .await
    .unwrap();
    assert!(
        out.contains("~ orders.main.created.1042.SO-001042 evt_r0.order@"),
        "{out}"
    );
    assert!(
        out.contains("event.order.tracking.Sales Channel: \"B2B Portal\" → \"Web Store\""),
        "{out}"
    );
    assert!(
        out.contains("7 would be new (7 replacing another revision)"),
        "{out}"
    );
    assert_eq!(stack.count("ORDERS").await, 3);

    // For real: every event again, under the new revision.
    let out = tokio::task::spawn_blocking(move || {
        replay(&url, &["--since", "2000-01-01", "--mapping", &path])
    })
    .await
    .unwrap();
    assert!(out.contains(": 7 new"), "{out}");
    assert_eq!(stack.count("ORDERS").await, 6);
    assert_eq!(stack.count("CUSTOMERS").await, 8);
}
