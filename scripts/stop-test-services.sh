#!/usr/bin/env bash
# Stops what scripts/test-services.sh started (the throwaway PostgreSQL cluster) and removes its files.
# Reads the "# postgres:" line of .test-services.env; safe to run when nothing is running.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f .test-services.env ] || exit 0
line=$(grep '^# postgres: ' .test-services.env | tail -1) || exit 0
read -r _ _ pgbin pgdir owner <<<"$line"
case "$pgdir" in /tmp/lmdeck-pg.*) ;; *) echo "refusing to remove unexpected directory: $pgdir" >&2; exit 1 ;; esac
if [ -d "$pgdir/data" ]; then
  if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then
    runuser -u "$owner" -- "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  else
    "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
fi
rm -rf "$pgdir"
sed -i '/^# postgres: /d; /^export LMDECK_TEST_POSTGRES_URL=/d' .test-services.env
