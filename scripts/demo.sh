#!/usr/bin/env bash
# The main job on local defaults: a nats-server, xero-sandbox, webhook-ingest, normalizer and
# xero-writer, fed a few hundred orders by clarity-sim; live progress, then a tie-out of Xero
# against the store. Ctrl-C stops everything. Options: target/debug/ledgerline-demo --help.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/ensure-nats-server.sh):$PATH"
export PATH
cargo build --workspace --bins
exec target/debug/ledgerline-demo "$@"
