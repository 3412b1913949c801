#!/usr/bin/env bash
# Installs (from Debian's packages) what the integration tests need that pip cannot bring,
# and writes .test-services.env for the test run. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stop-test-services.sh || true
: > .test-services.env
# PostgreSQL's tools: on PATH, else where Debian's packages put them.
pg_bin() {
  local d
  for d in "$(dirname "$(readlink -f "$(command -v initdb || echo /none/initdb)")")" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  return 0
}
need=()
command -v wrk >/dev/null || need+=(wrk)
# redis-server for the shared-state tests (limits, budgets, breakers, cache and notices across replicas).
command -v redis-server >/dev/null || need+=(redis-server)
# promtool (Debian's prometheus package) lints a real gateway's /metrics (tests/integration/test_prometheus.py).
command -v promtool >/dev/null || need+=(prometheus)
[ -n "$(pg_bin)" ] || need+=(postgresql)
# Headless Chromium and its WebDriver for the console's browser tests (lmdeck.testing.browser).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || echo "could not install: ${need[*]} (the tests that need them are skipped)"
fi

# A throwaway PostgreSQL cluster on 127.0.0.1 for the store tests (LMDECK_TEST_POSTGRES_URL);
# scripts/stop-test-services.sh stops it and removes its directory.
pgbin=$(pg_bin)
if [ -n "$pgbin" ]; then
  pgdir=$(mktemp -d /tmp/lmdeck-pg.XXXXXX)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  owner=$(id -un)
  as_owner=()
  if [ "$(id -u)" = 0 ]; then
    # The server refuses to run as root.
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
    chown "$owner" "$pgdir"
    as_owner=(runuser -u "$owner" --)
  fi
  echo "# postgres: $pgbin $pgdir $owner" >> .test-services.env
  if "${as_owner[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 >"$pgdir/initdb.log" 2>&1 &&
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null; then
    echo "export LMDECK_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/postgres" >> .test-services.env
  else
    echo "could not start PostgreSQL (see $pgdir); the PostgreSQL store tests are skipped"
  fi
else
  echo "no PostgreSQL found; the PostgreSQL store tests are skipped"
fi
