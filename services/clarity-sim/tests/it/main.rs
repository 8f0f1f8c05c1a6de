//! clarity-sim integration tests: one binary, real HTTP on 127.0.0.1, bounded polling only.

mod generation;
mod load;
mod receiver;
mod rest;
mod sending;
