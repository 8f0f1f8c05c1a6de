//! clarity-sim: a simulated Clarity eCommerce store for Ledgerline's tests and benchmarks.
//!
//! In-process API for tests:
//! - [`Generator::new`]`(seed, `[`GenConfig`]`)` → [`Generator::events`]: a deterministic
//!   timeline of [`Event`]s (id, type, store, partition key, version, exact body bytes).
//! - [`sign_event`] / [`sign_event_with`]: the headers of one delivery attempt.
//! - [`Sender`] with [`SendConfig`]: delivers a timeline to a URL with retries and [`Faults`],
//!   returning a [`SendReport`]; [`Sender::with_store`] keeps a [`Store`] in step for the REST API.
//! - [`GroundTruth::from_events`]: every order's final state and per-currency sums.
//! - [`serve::router`]: the REST API the resync uses, plus `/ground-truth`.
//! - [`load::run`]: the benchmark load mode.

pub mod event;
pub mod generate;
pub mod load;
pub mod model;
pub mod send;
pub mod serve;
pub mod store;
pub mod truth;

pub use event::{Event, Headers, sign_event, sign_event_with};
pub use generate::{GenConfig, Generator};
pub use send::{Faults, SendConfig, SendReport, Sender};
pub use serve::Credentials;
pub use store::{Store, StoreState};
pub use truth::GroundTruth;
