//! xero-writer against a real nats-server and the real xero-sandbox over HTTP.

// Not every test uses every helper.
#[allow(dead_code)]
mod helpers;

mod backfill;
mod bench;
mod converge;
mod faults;
mod oauth;
mod ordering;
mod permutations;
mod policies;
mod replicas;
mod review_more;
mod rules;
mod spec;
mod tiers;
