//! The example mapping shipped in deploy/ loads, validates and differs from the defaults.

use ledgerline_contract::v1::LineKind;
use ledgerline_mapping::{Effective, Layer, load_layers};
use std::path::Path;

#[test]
fn example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mapping.example.toml");
    let layer = Layer::from_file(&path).expect("example readable");
    let e = load_layers(&[layer]).expect("example validates");
    assert_eq!(e.mapping.account_for(LineKind::Product, "GST0"), "220");
    assert_eq!(e.mapping.payment_account("Credit Card"), "615");
    assert_eq!(e.mapping.tracking.len(), 2);
    assert_ne!(e.revision, Effective::defaults().revision);
}

#[test]
fn defaults_file_is_the_embedded_defaults() {
    let empty = load_layers(&[]).unwrap();
    assert_eq!(empty, Effective::defaults());
}
