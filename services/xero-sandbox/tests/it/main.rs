//! Integration tests: a real sandbox in-process, spoken to over HTTP.

mod accounting;
mod admin;
mod binary;
mod documents;
mod identity;
mod limits;
mod spec;
mod terms;
mod util;
mod webhooks;
