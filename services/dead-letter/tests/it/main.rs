//! dead-letter tests: the service as a child process on a real nats-server, with the real
//! normalizer, xero-writer and xero-sandbox where the flow needs them.

mod api;
mod bench;
mod bulk;
mod helpers;
mod normalizer_fix;
mod page;
mod refund_wait;
mod schemathesis;
mod writer_fix;
