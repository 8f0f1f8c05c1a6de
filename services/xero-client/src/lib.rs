//! ledgerline-xero-client: the one Xero client every service uses.
//!
//! - [`endpoint`]: where Xero is, the app's credentials, and the one token request.
//! - [`tokens`]: a tenant's [`TokenSource`]: [`credentials`] (client_credentials) or
//!   [`oauth`] (authorization_code + refresh under a KV lease, pause and alert when lost).
//! - [`client`]: one tenant's [`Client`]: budget, breaker, `Idempotency-Key`, retries.
//! - [`budget`]: the rate budget shared by replicas, and the circuit breaker.
//! - [`model`]: Xero's resources as typed structs, parsed from the answer's text so amounts
//!   keep every digit; [`exact`]: the [`AmountError`] for one that is missing or unreadable.
//! - [`plan`]: Xero's 2026 terms: tiers (day calls, egress allowance) and scopes.
//! - [`settings`]: the `XERO_*` settings every service reads alike, and tenant discovery.
//! - [`egress`]: response bytes per app per month (Xero's 2026 meter), shared in KV;
//!   [`usage`]: the 80 % / 100 % alerts on egress and the day's calls.
//! - [`error`]: [`XeroError`], typed by what the caller does next; [`refusal`]: [`Refusal`],
//!   what Xero's refusal of a document means (the only reader of Xero's wording).

pub mod budget;
pub mod client;
pub mod credentials;
pub mod egress;
pub mod endpoint;
pub mod error;
pub mod exact;
pub mod model;
pub mod oauth;
pub mod plan;
pub mod refusal;
pub mod settings;
pub mod tokens;
pub mod usage;

pub use client::{Client, hex, idempotency_key, validation_text};
pub use endpoint::Endpoint;
pub use error::XeroError;
pub use exact::AmountError;
pub use model::{Element, Need, Response};
pub use refusal::Refusal;
pub use tokens::TokenSource;
