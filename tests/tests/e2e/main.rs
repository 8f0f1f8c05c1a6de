//! Cross-service tests. They start the workspace binaries as child processes (build them first:
//! `cargo build --workspace --bins`, as scripts/test.sh does), so they run in nextest's serial
//! group.

mod backup;
mod compose;
mod crash;
mod deploy;
mod docs;
mod k8s;
mod latency;
mod pipeline;
mod report;
mod subscriber;
mod trace;
