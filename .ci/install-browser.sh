#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (tests/browser): Debian's
# `chromium` and `chromium-driver` (same version, so they always match). Idempotent: installs
# only when /usr/bin/chromium or /usr/bin/chromedriver is missing; prints the versions.
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; then
    apt-get update -qq
    apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null
  fi
fi
# Debian's /usr/bin/chromium wrapper is a shell script; its version line is what matters.
/usr/bin/chromium --version 2>/dev/null
/usr/bin/chromedriver --version
