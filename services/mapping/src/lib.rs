//! The Ledgerline mapping: how a store's orders become Xero documents, defined once and read by
//! the normalizer and the xero-writer.
//!
//! - [`Mapping`] is the schema (see `deploy/mapping.example.toml` for every key).
//! - [`load_layers`] builds an [`Effective`] mapping (with its revision) from the embedded
//!   defaults, the operator's file and the KV overlay, validating it; errors name the source,
//!   the key and the reason ([`MappingError`]).
//! - [`MappingSource`] keeps it current at run time (file mtime poll, SIGHUP, KV watch on the
//!   `mapping_overlay` bucket) and hands out [`MappingHandle`]s.
//!
//! ```no_run
//! # async fn f(js: async_nats::jetstream::Context, shutdown: tokio_util::sync::CancellationToken) -> Result<(), Box<dyn std::error::Error>> {
//! use ledgerline_contract::v1::LineKind;
//! let (source, handle) = ledgerline_mapping::MappingSource::load(Some("mapping.toml".into()))?;
//! tokio::spawn(source.clone().follow_overlay(js, shutdown.clone()));
//! tokio::spawn(source.follow_file(std::time::Duration::from_secs(2), shutdown));
//! let current = handle.current();
//! let account = current.mapping.account_for(LineKind::Shipping, "GST15");
//! let tax_type = current.mapping.tax_type_for(LineKind::Product, "GST10", true);
//! # let _ = (account, tax_type); Ok(()) }
//! ```

mod load;
mod reload;
mod schema;

pub use load::{
    CLARITY_STATUSES, DEFAULTS, Effective, Layer, MappingError, load_layers, merge, revision,
};
pub use reload::{MappingHandle, MappingSource};
pub use schema::*;
