//! Test harness shared by every crate's tests.
//!
//! - [`NatsServer`]: a real `nats-server -js` on a free port with its own store directory, which
//!   a test can stop, restart (same port, same store) or kill; cleaned up on drop.
//! - [`ServiceProcess`]: a workspace binary started as a child process on a free port, waited on
//!   until its `/readyz` answers 200, with its output captured for assertions.
//!
//! - [`python_tool`]: a PyPI tool (schemathesis, ...) in a venv of its own under `target/`.
//! - `browser` (feature): a headless Chromium through chromedriver, for page tests.
//!
//! Everything here is blocking std code on purpose: it works from sync and async tests alike.

#[cfg(feature = "browser")]
pub mod browser;
mod http;
mod nats;
mod process;
mod python;

pub use http::{http_get, wait_until};
pub use nats::{NatsServer, find_nats_server};
pub use process::{
    ServiceProcess, find_workspace_binary, free_port, peak_rss_kib, workspace_binary,
};
pub use python::python_tool;
