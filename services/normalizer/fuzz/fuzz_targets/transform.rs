//! Any bytes through the transform: it returns events or a typed error, and never panics; every
//! order it accepts has lines summing exactly to its total.
#![no_main]

use ledgerline_mapping::Effective;
use libfuzzer_sys::fuzz_target;
use normalizer::transform::{Message, transform};
use std::sync::OnceLock;

static MAPPING: OnceLock<Effective> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mapping = MAPPING.get_or_init(Effective::defaults);
    if let Ok(events) = transform(data, None, mapping) {
        for e in events {
            if let Message::Order(o) = e.message {
                let order = o.order.expect("order events carry the order");
                let sum: rust_decimal::Decimal = order
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
                let total = order.totals.unwrap().total.unwrap().amount;
                assert_eq!(sum.to_string(), total, "lines must sum to the total");
            }
        }
    }
});
