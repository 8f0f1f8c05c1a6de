//! Generates the Rust types for `proto/ledgerline/v1/*.proto` with a vendored protoc, so a fresh
//! machine needs no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "model.proto",
        "events.proto",
        "dead_letter.proto",
        "xero.proto",
    ]
    .map(|f| root.join("ledgerline/v1").join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // BTreeMap keeps map fields in key order, so encoding is deterministic (fixtures, dedup).
    config.btree_map(["."]);
    // JSON views for operators (the review queue's decoded payloads, and the payloads they
    // edit before a replay); enums are numbers both ways. `default` lets an edit leave out
    // fields that are zero, as protobuf does.
    config.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    config.message_attribute(".", "#[serde(default)]");
    config.compile_protos(&files, &[root])?;
    Ok(())
}
