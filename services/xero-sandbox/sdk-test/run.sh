#!/usr/bin/env bash
# Runs test_sdk.py (Xero's official xero-python SDK) against a freshly built xero-sandbox on a
# free port. Exits non-zero on failure; the last line is "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${XERO_SDK_VENV:-$target/xero-sdk-venv}"
sdk_version="15.2.0"

cd "$root"
if ! cargo build -q -p xero-sandbox; then
    echo "0 passed, 1 failed (cargo build)"
    exit 1
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import xero_python" 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "xero-python==$sdk_version" || {
        echo "0 passed, 1 failed (installing xero-python==$sdk_version)"
        exit 1
    }
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
"$target/debug/xero-sandbox" --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$log"
        echo "0 passed, 1 failed (sandbox did not start)"
        exit 1
    fi
    sleep 0.1
done

XERO_SANDBOX_URL="http://127.0.0.1:$port" "$venv/bin/python" "$here/test_sdk.py"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- sandbox log ---"
    tail -n 50 "$log"
fi
exit "$rc"
