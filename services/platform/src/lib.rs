//! Shared plumbing for every Ledgerline service, written once:
//!
//! - [`config`]: flags + environment + one optional TOML file, secrets from `*_FILE`.
//! - [`nats`]: connection (auth, TLS, events logged), the server version check, and idempotent
//!   creation of the topology declared in `ledgerline-contract`.
//! - [`publish`]: publishes that always await the PubAck and carry the house headers.
//! - [`dead_letter`]: the one dead-letter builder (contract v2) every stage uses.
//! - [`consume`]: a pull-consumer loop with bounded concurrency and a graceful stop.
//! - [`read`]: what a stream holds on some subjects (one order's events), without consuming it.
//! - [`telemetry`]: logs, OTLP traces when configured, W3C trace context in NATS headers.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`; [`shutdown`]: SIGTERM and SIGINT.
//! - [`json`]: the workspace's one way to read JSON numbers as `rust_decimal`.
//! - [`tls`]: the one TLS crypto provider (ring).
//! - [`text`]: aligned tables and safe CSV for operators' tools.

pub mod config;
pub mod consume;
pub mod dead_letter;
pub mod health;
pub mod http;
pub mod json;
pub mod metrics;
pub mod nats;
pub mod progress;
pub mod publish;
pub mod read;
pub mod shutdown;
pub mod standard_webhooks;
pub mod telemetry;
pub mod text;
pub mod tls;
