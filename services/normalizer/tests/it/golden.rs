//! Golden files: every input under tests/golden/inputs becomes canonical JSON (or its DLQ
//! reason) under tests/golden/outputs, with the embedded default mapping.
//!
//! `UPDATE_GOLDEN=1 cargo nextest run -p normalizer golden` rewrites the outputs (and regenerates
//! the clarity-sim inputs from their fixed seeds); review the diff before committing.

use ledgerline_mapping::Effective;
use normalizer::transform::{Facts, transform, transform_with_facts};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Fixed seeds: (seed, orders, events taken).
const SIM: [(u64, usize, usize); 3] = [(1, 3, 12), (2, 3, 10), (3, 12, 0)];

fn write_sim_inputs() {
    let inputs = dir().join("inputs");
    for entry in std::fs::read_dir(&inputs).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("sim_") {
            std::fs::remove_file(p).unwrap();
        }
    }
    for (seed, orders, take) in SIM {
        let events =
            clarity_sim::Generator::new(seed, clarity_sim::GenConfig::new("main", orders)).events();
        let mut chosen: Vec<(usize, &clarity_sim::Event)> =
            events.iter().enumerate().take(take).collect();
        if take == 0 {
            // One of each type the timeline has, for the types the first seeds may not reach.
            let mut seen = std::collections::BTreeSet::new();
            chosen = events
                .iter()
                .enumerate()
                .filter(|(_, e)| seen.insert(format!("{:?}", e.event_type)))
                .collect();
        }
        for (i, e) in chosen {
            let ty: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            let ty = ty["type"].as_str().unwrap().replace('.', "_");
            let name = format!("sim_s{seed}_{i:03}_{ty}.json");
            std::fs::write(inputs.join(name), &e.body).unwrap();
        }
    }
}

#[test]
fn golden_outputs() {
    if updating() {
        write_sim_inputs();
    }
    let effective = Effective::defaults();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir().join("inputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 40,
        "at least 40 golden inputs, found {}",
        inputs.len()
    );
    let out_dir = dir().join("outputs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut mismatches = Vec::new();
    for input in &inputs {
        let body = std::fs::read(input).unwrap();
        let mut facts = Facts::default();
        let value = match transform_with_facts(&body, None, &effective, &mut facts) {
            Ok(events) => {
                serde_json::Value::Array(events.iter().map(normalizer::json::canonical).collect())
            }
            Err(e) => {
                let mut v = serde_json::json!({ "dead_letter": e.reason().as_str_name(), "error": e.to_string() });
                if !facts.suggestions.is_empty() {
                    v["suggestions"] = facts
                        .suggestions
                        .iter()
                        .map(|s| serde_json::json!({ "field": s.field, "suggested_value": s.suggested_value, "score": s.score, "reason": s.reason }))
                        .collect();
                }
                v
            }
        };
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let out = out_dir.join(input.file_name().unwrap());
        if updating() {
            std::fs::write(&out, &text).unwrap();
        } else {
            let want = std::fs::read_to_string(&out).unwrap_or_default();
            if want != text {
                mismatches.push(out.display().to_string());
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden outputs differ (UPDATE_GOLDEN=1 to accept): {mismatches:#?}"
    );
}

#[test]
fn example_order_is_as_documented() {
    let body = std::fs::read(dir().join("inputs/example_sales_order_created.json")).unwrap();
    let effective = Effective::defaults();
    let events = transform(&body, Some("main"), &effective).unwrap();
    assert_eq!(events.len(), 2, "an order event and its customer");
    assert_eq!(events[0].subject, "orders.main.created.1042.SO-001042");
    assert_eq!(events[1].subject, "customers.main.updated");
    assert_eq!(
        events[0].event_id,
        format!(
            "evt_01JD7Q0K4V9S3T6XWZ2M8N5B1C.order@{}",
            effective.revision
        )
    );
    let normalizer::transform::Message::Order(e) = &events[0].message else {
        panic!("order")
    };
    let o = e.order.as_ref().unwrap();
    let total: rust_decimal::Decimal = o
        .lines
        .iter()
        .map(|l| {
            l.line_total
                .as_ref()
                .unwrap()
                .amount
                .parse::<rust_decimal::Decimal>()
                .unwrap()
                + l.tax_amount
                    .as_ref()
                    .unwrap()
                    .amount
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
        })
        .sum();
    assert_eq!(total.to_string(), "120.75");
    assert_eq!(o.tracking["Sales Channel"], "B2B Portal");
    assert_eq!(o.tracking["Region"], "North Island");
    assert_eq!(o.customer.as_ref().unwrap().identity_key, "ACME-TRADING");
    // The body names store "main": arriving for another store is invalid.
    let err = transform(&body, Some("outlet"), &effective).unwrap_err();
    assert_eq!(err.reason(), ledgerline_contract::v1::ReasonClass::Invalid);
}

/// Every event clarity-sim generates (several seeds, hundreds of orders) normalises under the
/// default mapping, and every order's lines sum to its total.
#[test]
fn every_simulated_event_normalises() {
    let effective = Effective::defaults();
    let mut n = 0;
    for seed in [11, 12, 13, 14] {
        let events =
            clarity_sim::Generator::new(seed, clarity_sim::GenConfig::new("main", 250)).events();
        for e in &events {
            let out = transform(&e.body, Some("main"), &effective).unwrap_or_else(|err| {
                panic!(
                    "seed {seed} {}: {err}\n{}",
                    e.id,
                    String::from_utf8_lossy(&e.body)
                )
            });
            assert!(!out.is_empty());
            n += 1;
        }
    }
    assert!(n > 1000, "{n}");
}
