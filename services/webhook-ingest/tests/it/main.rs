//! webhook-ingest over real HTTP, with a real nats-server, as a child process.

mod helpers;
mod ingest;
mod lifecycle;
mod resync;
