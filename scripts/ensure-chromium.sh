#!/usr/bin/env bash
# Makes Debian's chromium and chromium-driver available for the page tests (a real headless
# browser through WebDriver). Installs them with apt-get when they are missing and we may.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium and chromium-driver (page tests)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium chromium-driver >&2
  exit 0
fi
echo "The page tests need chromium and chromium-driver: sudo apt-get install chromium chromium-driver" >&2
exit 1
