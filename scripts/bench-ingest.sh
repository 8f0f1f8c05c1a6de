#!/usr/bin/env bash
# Ingest benchmark: release webhook-ingest on its own nats-server (file store, default settings),
# driven by clarity-sim's load mode (pre-signed copies of the 3.3 KiB example order, raw
# HTTP/1.1, 64 keep-alive connections), against the honest baseline measured in the same run:
# the best raw JetStream publish rate async-nats reaches here (same-size messages, a window of
# 64 outstanding acks, every ack awaited). Five interleaved rounds (raw, ingest, raw, ingest,
# ...) report the median and the range of each and of their ratio (target >= 0.5).
#
#   scripts/bench-ingest.sh                  # 5 rounds of 10 s each phase
#   ROUNDS=3 DURATION=20s scripts/bench-ingest.sh
#   scripts/bench-ingest.sh --callgrind      # instructions per accepted webhook (valgrind)
#   INGEST_BIN=/tmp/ingest-old scripts/bench-ingest.sh   # an earlier build, for before/after
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/ensure-nats-server.sh):$PATH"
export PATH
mode=rate
bin=${INGEST_BIN:-target/release/webhook-ingest}
if [ "${1:-}" = "--callgrind" ]; then mode=callgrind; shift; fi
cargo build --release -p webhook-ingest -p clarity-sim
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nport=$(port); hport=$(port)
nats-server -a 127.0.0.1 -p "$nport" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
npid=$!
trap 'kill ${ipid:-} $npid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -s "127.0.0.1:$nport" >/dev/null 2>&1 && break; sleep 0.1; done
# RAW holds 1 GiB by default (about 200k of these bodies): give the runs room, or they measure 503s.
export NATS_STREAM_SIZE_FACTOR=16 NATS_URL="nats://127.0.0.1:$nport" RUST_LOG=warn
if [ "$mode" = callgrind ]; then
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$bin" --listen "127.0.0.1:$hport" >"$dir/ingest.log" 2>&1 &
else
  "$bin" --listen "127.0.0.1:$hport" >"$dir/ingest.log" 2>&1 &
fi
ipid=$!
for _ in $(seq 600); do curl -sf "127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.1; done
echo "nats-server $(nats-server --version | awk '{print $NF}'): JetStream file store in a temp dir, default sync (every 2 min), default max_payload; $(nproc) cores; git $(git rev-parse --short HEAD)"
target="http://127.0.0.1:$hport/webhooks/clarity/main"
if [ "$mode" = callgrind ]; then
  n=${REQUESTS:-5000}
  # Warm up (connections, allocator, JIT-free but lazy statics), then count only the measured part.
  env -u NATS_URL target/release/clarity-sim load --target "$target" --connections 16 --requests 500 >/dev/null 2>&1
  callgrind_control --zero "$ipid" >/dev/null
  env -u NATS_URL target/release/clarity-sim load --target "$target" --connections 16 --requests "$n" --first 10000000 >/dev/null 2>"$dir/load.err"
  tail -1 "$dir/load.err"
  callgrind_control --dump "$ipid" >/dev/null
  [ -n "${CALLGRIND_KEEP:-}" ] && cp "$dir"/cg.out* "$CALLGRIND_KEEP"/
  out=$(ls -t "$dir"/cg.out* | head -1)
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
  echo "instructions per accepted webhook: $((ir / n)) ($ir over $n webhooks, valgrind --tool=callgrind)"
  exit 0
fi
target/release/clarity-sim load --target "$target" --connections 64 --duration "${DURATION:-10s}" \
  --rounds "${ROUNDS:-5}" --nats "$NATS_URL" --pid "$ipid" "$@" >"$dir/report.json"
cp "$dir/report.json" "${BENCH_INGEST_JSON:-/dev/null}" 2>/dev/null || true
