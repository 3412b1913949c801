"""How much latency lmdeck adds in front of an upstream, and how many requests one worker serves.

    python bench/gateway_overhead.py                # the full run (about a minute and a half)
    python bench/gateway_overhead.py --duration 5   # shorter

Starts the FAKE upstream (zero latency) and one ``lmdeck serve`` worker with
authentication, durable tracing and metrics on, then drives both with wrk
(Debian's package; a Lua script sends the POST and paces each connection to
hold a fixed rate). Every rate is measured straight to the upstream (the
baseline) and through lmdeck in the same run, so the machine's noise hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from lmdeck.testing.servers import fake_upstream_process, gateway_process

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 16}

LUA = r"""
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local interval = tonumber(os.getenv("BENCH_INTERVAL_MS"))
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

function delay()
  if interval > 0 then return interval end
  return 0
end

function done(summary, latency, requests)
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max)
  io.stderr:write("BENCH_RESULT " .. out .. "\n")
end
"""


@dataclass
class Run:
    requests: int
    duration_us: int
    errors: int
    status_errors: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)


def wrk(url: str, *, rate: float | None, duration: float, connections: int, auth: str | None, script: Path) -> Run:
    interval_ms = 0 if rate is None else max(int(connections * 1000 / rate), 1)
    env = {
        **os.environ,
        "BENCH_BODY": json.dumps(BODY),
        "BENCH_AUTH": auth or "",
        "BENCH_INTERVAL_MS": str(interval_ms),
    }
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(int(duration), 1)}s", "--latency", "-s", str(script), url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH_RESULT "):
            return Run(**json.loads(line.removeprefix("BENCH_RESULT ")))
    raise RuntimeError(f"wrk gave no result:\n{proc.stdout}\n{proc.stderr}")


def pin(pid: int, cpus: str) -> None:
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rates", default="100,500", help="fixed request rates to hold (requests/s)")
    parser.add_argument("--connections", type=int, default=10, help="wrk connections at fixed rates")
    parser.add_argument("--saturation-connections", type=int, default=32)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="lmdeck-bench-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        with fake_upstream_process(latency_ms=0, log_dir=tmp) as fake:
            config = {
                "default_routes": False,
                "routes": [
                    {"name": "bench", "targets": [{"provider": "openai", "model": "m", "base_url": fake.base_url}]}
                ],
            }
            with gateway_process(config, data_dir=Path(tmp) / "gw") as gw:
                # lmdeck gets a core of its own; wrk and the fake upstream share the other.
                pin(gw.proc.pid, "1")
                pin(fake.proc.pid, "0")
                direct = f"{fake.base_url}/chat/completions"
                through = f"{gw.base_url}/chat/completions"
                check = httpx.post(through, json=BODY, headers=gw.headers(), timeout=10)
                check.raise_for_status()
                for url, auth in ((direct, None), (through, gw.admin_key)):  # warm up both paths
                    wrk(url, rate=None, duration=2, connections=4, auth=auth, script=script)

                rows = []
                for rate_text in args.rates.split(","):
                    rate = float(rate_text)
                    base = wrk(
                        direct,
                        rate=rate,
                        duration=args.duration,
                        connections=args.connections,
                        auth=None,
                        script=script,
                    )
                    lm = wrk(
                        through,
                        rate=rate,
                        duration=args.duration,
                        connections=args.connections,
                        auth=gw.admin_key,
                        script=script,
                    )
                    rows.append((f"{rate:.0f} rps", base, lm))
                conns = args.saturation_connections
                base_sat = wrk(direct, rate=None, duration=args.duration, connections=conns, auth=None, script=script)
                lm_sat = wrk(
                    through, rate=None, duration=args.duration, connections=conns, auth=gw.admin_key, script=script
                )
                rows.append(("saturation", base_sat, lm_sat))
                time.sleep(1.0)
                traces = httpx.get(f"{gw.url}/metrics", timeout=10).text
                spool_line = next((ln for ln in traces.splitlines() if ln.startswith("lmdeck_spool_depth")), "")

    print("lmdeck gateway overhead (fake upstream, zero latency; auth, tracing and metrics on; 1 worker)")
    print(f"{'load':<12}{'path':<10}{'achieved rps':>14}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for label, base, lm in rows:
        for path, run in (("direct", base), ("lmdeck", lm)):
            print(
                f"{label:<12}{path:<10}{run.rps:>14.0f}{run.p50_us / 1000:>10.2f}{run.p90_us / 1000:>10.2f}"
                f"{run.p99_us / 1000:>10.2f}{run.errors + run.status_errors:>8}"
            )
    print()
    print(f"{'load':<12}{'added p50 ms':>14}{'added p99 ms':>14}{'p99 ratio':>11}{'rps ratio':>11}")
    for label, base, lm in rows:
        print(
            f"{label:<12}{(lm.p50_us - base.p50_us) / 1000:>14.2f}{(lm.p99_us - base.p99_us) / 1000:>14.2f}"
            f"{lm.p99_us / max(base.p99_us, 1):>11.2f}{lm.rps / max(base.rps, 1e-9):>11.2f}"
        )
    print(f"\nmax rps per lmdeck worker (saturation, {args.saturation_connections} connections): {lm_sat.rps:.0f}")
    if spool_line:
        print(f"after the run: {spool_line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
