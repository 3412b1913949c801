"""Does the gateway's memory stay flat under a long run of requests?

    python bench/memory.py                      # 50,000 requests after a 5,000-request warm-up
    python bench/memory.py --requests 10000     # shorter

Starts the FAKE upstream (zero latency) and one ``lmdeck serve`` with authentication,
durable tracing and metrics on, then sends chat requests through it from a few client
threads. Every request differs in what a careless cache would keep: its ``x-request-id``,
its ``user``, its text; one in ten streams, one in twenty names a model that does not exist.
The gateway's resident memory (``VmRSS`` of its process) is printed at each checkpoint,
with the growth per request since the end of the warm-up; a flat run grows by a few bytes
per request at most (allocator noise), where a per-request leak shows as hundreds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lmdeck.testing.servers import GatewayProcess, fake_upstream_process, gateway_process, openai_target


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Driver:
    """Sends numbered requests from ``threads`` client threads, each with its own keep-alive connection."""

    def __init__(self, gw: GatewayProcess, threads: int) -> None:
        self.gw = gw
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads)
        self.failures: list[str] = []

    def _client(self) -> httpx.Client:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(base_url=self.gw.base_url, headers=self.gw.headers(), timeout=60)
        return client

    def one(self, i: int) -> None:
        model = "nowhere" if i % 20 == 19 else "chat"
        stream = i % 10 == 3
        body = {
            "model": model,
            "messages": [{"role": "user", "content": f"request {i}: say something"}],
            "max_tokens": 8,
            "user": f"user-{i}",
            "stream": stream,
        }
        headers = {"x-request-id": f"bench-{i}"}
        client = self._client()
        if stream:
            with client.stream("POST", "/chat/completions", json=body, headers=headers) as response:
                response.read()
        else:
            response = client.post("/chat/completions", json=body, headers=headers)
        expected = 404 if model == "nowhere" else 200
        if response.status_code != expected and len(self.failures) < 10:
            self.failures.append(f"request {i}: {response.status_code} {response.text[:200]}")

    def run(self, start: int, count: int) -> None:
        list(self.pool.map(self.one, range(start, start + count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests measured after the warm-up")
    parser.add_argument("--warmup", type=int, default=5_000, help="requests before the first measurement")
    parser.add_argument("--checkpoints", type=int, default=10, help="RSS readings during the measured requests")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lmdeck-bench-memory-") as tmp, fake_upstream_process(log_dir=tmp) as fake:
        routes = [{"name": "chat", "targets": [openai_target(fake)]}]
        with gateway_process({"default_routes": False, "routes": routes}, data_dir=Path(tmp) / "gw") as gw:
            pid = gw.proc.pid
            driver = Driver(gw, args.threads)
            print(f"lmdeck serve pid {pid}; warm-up of {args.warmup} requests", flush=True)
            started = time.monotonic()
            driver.run(0, args.warmup)
            base = rss_kib(pid)
            print(f"{'requests':>10} {'RSS MiB':>9} {'growth B/request':>17}", flush=True)
            print(f"{0:>10} {base / 1024:>9.1f} {'-':>17}", flush=True)
            step = max(1, args.requests // args.checkpoints)
            sent = 0
            readings = [(0, base)]
            while sent < args.requests:
                count = min(step, args.requests - sent)
                driver.run(args.warmup + sent, count)
                sent += count
                now = rss_kib(pid)
                readings.append((sent, now))
                print(f"{sent:>10} {now / 1024:>9.1f} {(now - base) * 1024 / sent:>17.1f}", flush=True)
            elapsed = time.monotonic() - started
            # The second half against the first: a leak keeps growing, a filling cache levels off.
            half = readings[len(readings) // 2]
            late = (readings[-1][1] - half[1]) * 1024 / max(1, readings[-1][0] - half[0])
            result = {
                "requests": args.requests,
                "warmup": args.warmup,
                "rss_start_mib": round(base / 1024, 1),
                "rss_end_mib": round(readings[-1][1] / 1024, 1),
                "growth_bytes_per_request": round((readings[-1][1] - base) * 1024 / args.requests, 1),
                "second_half_bytes_per_request": round(late, 1),
                "requests_per_second": round((args.warmup + args.requests) / elapsed, 1),
                "failures": driver.failures,
            }
            print("RESULT " + json.dumps(result), flush=True)
            return 1 if driver.failures else 0


if __name__ == "__main__":
    sys.exit(main())
