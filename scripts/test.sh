#!/usr/bin/env bash
# The test command (README): every crate's tests against a real nats-server, then the official
# Xero SDK against xero-sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/ensure-nats-server.sh):$PATH"
export PATH
# The operator page's tests drive a real headless Chromium.
scripts/ensure-chromium.sh
# Cross-crate tests start workspace binaries as child processes: build them first.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast
if [ -x services/xero-sandbox/sdk-test/run.sh ]; then
  services/xero-sandbox/sdk-test/run.sh
fi
