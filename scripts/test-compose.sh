#!/usr/bin/env bash
# The compose test: Ledgerline's images built here (deploy/images.sh), the docker-compose stack
# up in real containers, orders through it with the writer and NATS killed mid-load, a tie-out,
# and everything torn down. Needs a Docker engine and docker-compose; skipped (exit 0, said so)
# without them. `.ci/run` runs it after the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
  echo "compose test skipped: no Docker engine or no docker-compose here" >&2
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing debootstrap (the images' base)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends debootstrap >&2
  else
    echo "The compose test needs debootstrap: sudo apt-get install debootstrap" >&2
    exit 1
  fi
fi
PATH="$(scripts/ensure-nats-server.sh):$PATH"
export PATH
cargo build --workspace --bins
cargo nextest run -p ledgerline-tests --run-ignored only -E 'test(compose_)' --no-capture
