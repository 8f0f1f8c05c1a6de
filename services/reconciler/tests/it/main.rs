//! reconciler tests: the service as a child process beside the real writer and xero-sandbox on
//! a real nats-server; drift induced in the sandbox as a person would cause it, and orders the
//! store holds that the webhooks never delivered.

mod bench;
mod drift;
mod edits;
mod helpers;
mod report;
mod store;
