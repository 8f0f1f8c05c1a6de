//! Shared plumbing for every Ledgerline service.

pub mod json;
pub mod standard_webhooks;
