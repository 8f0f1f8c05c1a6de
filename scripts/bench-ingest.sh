#!/usr/bin/env bash
# Ingest benchmark (issue 4): release webhook-ingest on its own nats-server (default settings,
# file store, no sync_interval), driven by clarity-sim's load mode with 64 connections; then the
# raw JetStream publish rate of same-size messages with 64 in flight, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/ensure-nats-server.sh):$PATH"
export PATH
cargo build --release -p webhook-ingest -p clarity-sim
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nport=$(port); hport=$(port)
nats-server -a 127.0.0.1 -p "$nport" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
npid=$!
trap 'kill ${ipid:-} $npid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# RAW holds 1 GiB by default (about 200k of these bodies): give the run room, or it measures 503s.
NATS_STREAM_SIZE_FACTOR=8 NATS_URL="nats://127.0.0.1:$nport" RUST_LOG=warn target/release/webhook-ingest --listen "127.0.0.1:$hport" >"$dir/ingest.log" 2>&1 &
ipid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.1; done
echo "nats-server $(nats-server --version | awk '{print $2}'), JetStream file store, default sync; $(nproc) cores"
target/release/clarity-sim load --target "http://127.0.0.1:$hport/webhooks/clarity/main" \
  --connections 64 --duration "${DURATION:-20s}" --nats "nats://127.0.0.1:$nport" --pid "$ipid" "$@"
