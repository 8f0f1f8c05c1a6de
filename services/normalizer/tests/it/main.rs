//! normalizer tests: golden files and properties on the pure transform, and the service as a
//! child process against a real nats-server.

mod golden;
mod helpers;
mod props;
mod replay;
mod reprocess;
mod service;
