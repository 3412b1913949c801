#!/usr/bin/env bash
# Installs (from Debian's packages) what the integration tests need that pip cannot bring,
# and writes .test-services.env for the test run. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
: > .test-services.env
need=()
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || echo "could not install: ${need[*]} (the tests that need them are skipped)"
fi
