"""How much latency lmdeck adds in front of an upstream, and how many requests one worker serves.

    python bench/gateway_overhead.py                # the full run (about two minutes)
    python bench/gateway_overhead.py --duration 5   # shorter
    python bench/gateway_overhead.py --no-stream    # without the streaming rows
    python bench/gateway_overhead.py --workers 2    # lmdeck serve --workers 2
    python bench/gateway_overhead.py --scaling      # saturation with 1 and 2 workers, and the scaling ratio
    python bench/gateway_overhead.py --peers        # also LiteLLM's proxy and Portkey's gateway

Starts the FAKE upstream (zero latency) and ``lmdeck serve`` with authentication,
durable tracing and metrics on, then drives both with wrk (Debian's package; a
Lua script sends the POST and paces each connection, with exponentially distributed
waits so that arrivals are close to Poisson, to hold a fixed rate). Every rate is
measured straight to the upstream (the baseline) and through lmdeck in the same run,
so the machine's noise hits both. Streamed chat is driven by a small
aiohttp client at a fixed rate on wrk's core, which times the first token and the
whole stream of each request. ``--peers`` installs LiteLLM's proxy (PyPI) and
Portkey's gateway (npm) under ``bench/.peers`` on first use and puts them in
front of the same fake upstream with the same load and core pinning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from lmdeck.testing.servers import fake_upstream_process, free_port, gateway_process

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 16}
#: The streamed request; the fake answers it with ``--stream-chunks`` tokens (its ``answers`` setting).
STREAM_PROMPT = "Stream the benchmark reply."
LITELLM_KEY = "sk-bench-5f1c0a7e9d2b4c6a8e0f1a3b5c7d9e1f"
PEERS_DIR = Path(__file__).resolve().parent / ".peers"

LUA = r"""
local body = os.getenv("BENCH_BODY")
local interval = tonumber(os.getenv("BENCH_INTERVAL_MS"))
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name ~= nil then wrk.headers[name] = value end
end

-- Each connection waits an exponentially distributed time (mean: the interval) after each answer,
-- so that arrivals from all connections together are close to Poisson; a fixed wait would keep the
-- connections in step, sending bursts of one request per connection at a time.
math.randomseed(os.time())
function delay()
  if interval > 0 then return math.floor(-interval * math.log(1 - math.random()) + 0.5) end
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
    """One wrk measurement: counts, latency percentiles in microseconds."""

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


@dataclass
class StreamRun:
    """Streamed requests at a fixed rate: per request, time to the first token and to the end (µs)."""

    ttft_us: list[float] = field(default_factory=list)
    total_us: list[float] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    errors: int = 0
    #: What the first failed request answered or raised, for the table when none succeeded.
    first_error: str = ""

    def fail(self, reason: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or " ".join(reason.split())[:160]

    def ttft(self, q: float) -> float:
        return percentile(self.ttft_us, q)

    def total(self, q: float) -> float:
        return percentile(self.total_us, q)

    @property
    def mean_chunks(self) -> float:
        return statistics.fmean(self.chunks) if self.chunks else 0.0


@dataclass
class Target:
    """A path under test: the chat completions URL and the headers its requests carry."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CorePlan:
    """Which CPUs (taskset lists) lmdeck, the load generator and the fake upstream run on."""

    lmdeck: str
    load: str
    upstream: str
    shared: bool = False

    def note(self) -> str:
        text = f"lmdeck on CPU {self.lmdeck}, load on CPU {self.load}, upstream on CPU {self.upstream}"
        if self.shared:
            text += " (too few cores: lmdeck shares its cores with the load and the upstream, so this understates it)"
        return text


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def parse_rates(text: str) -> list[float]:
    """``"100,500"`` → ``[100.0, 500.0]``; ``ValueError`` for a rate that is not a positive number."""
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or any(rate <= 0 for rate in rates):
        raise ValueError(f"rates must be positive numbers separated by commas, got {text!r}")
    return rates


def core_plan(workers: int, cores: int) -> CorePlan:
    """Pin lmdeck's ``workers`` to cores of their own when there are enough, else share.

    With ``workers + 2`` cores or more the load and the upstream get one each and lmdeck the next
    ``workers``; with ``workers + 1`` the load and the upstream share core 0; with fewer lmdeck
    gets every core and competes with both (``shared``).
    """
    if cores >= workers + 2:
        return CorePlan(lmdeck=_cpus(2, workers), load="0", upstream="1")
    if cores >= workers + 1:
        return CorePlan(lmdeck=_cpus(1, workers), load="0", upstream="0")
    return CorePlan(lmdeck=_cpus(0, cores), load="0", upstream="0", shared=True)


def _cpus(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def scaling_ratio(rps_n: float, rps_1: float, workers: int) -> float:
    """``rps(N) / rps(1) / N``: 1.0 is linear scaling, 0.5 means the second worker added nothing."""
    return rps_n / max(rps_1, 1e-9) / workers


def wrk(
    url: str, *, rate: float | None, duration: float, connections: int, headers: Mapping[str, str], script: Path
) -> Run:
    interval_ms = 0 if rate is None else max(int(connections * 1000 / rate), 1)
    env = {
        **os.environ,
        "BENCH_BODY": json.dumps(BODY),
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items()),
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


async def _stream_once(session: Any, target: Target, out: StreamRun) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": STREAM_PROMPT}], "stream": True, "max_tokens": 4096}
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    try:
        async with session.post(target.url, json=body, headers=target.headers) as response:
            if response.status != 200:
                out.fail(f"{response.status} {(await response.read()).decode(errors='replace')}")
                return
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                choices = json.loads(line[5:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
    except Exception as exc:  # any failure counts as an error of this path; the load goes on
        out.fail(repr(exc))
        return
    end = time.perf_counter()
    if first is None:
        out.fail("the stream carried no content")
        return
    out.ttft_us.append((first - start) * 1e6)
    out.total_us.append((end - start) * 1e6)
    out.chunks.append(chunks)


async def _stream_load(target: Target, rate: float, duration: float) -> StreamRun:
    import aiohttp

    out = StreamRun()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=256)) as session:
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for i in range(max(int(rate * duration), 1)):
            # Open loop: each request starts on its slot whether or not the earlier ones have ended.
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(_stream_once(session, target, out)))
        await asyncio.gather(*tasks)
    return out


def stream_load(target: Target, *, rate: float, duration: float, cpus: str) -> StreamRun:
    """Streamed chat requests at ``rate`` per second for ``duration`` seconds, this thread pinned to ``cpus``."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _cpu_set(cpus))
    try:
        return asyncio.run(_stream_load(target, rate, duration))
    finally:
        os.sched_setaffinity(0, before)


def _cpu_set(cpus: str) -> set[int]:
    out: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def pin(pid: int, cpus: str) -> None:
    """Pin ``pid``, its threads and its child processes (workers) to ``cpus``."""
    if shutil.which("taskset"):
        for each in _descendants(pid):
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(each)], capture_output=True, check=False)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def pin_store_processes(gateway_pid: int, workers: int, cpus: str | None) -> str:
    """Pin lmdeck's trace store processes (``lmdeck-writer``, one per worker) to ``cpus``; a note for the table.

    ``None`` leaves them where they start: on the cores of the worker that starts them. They start
    with the first stored trace, so this waits (up to a minute) until ``workers`` of them are up.
    """
    if cpus is None:
        return "store processes on lmdeck's CPUs"
    end = time.monotonic() + 60
    found: list[int] = []
    while time.monotonic() < end:
        found = [p for p in _descendants(gateway_pid) if _comm(p) == "lmdeck-writer"]
        if len(found) >= workers:
            break
        time.sleep(0.2)
    if not found:
        raise BenchSetupError("no lmdeck-writer process appeared: is tracing.writer_process off?")
    for each in found:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(each)], capture_output=True, check=False)
    return f"store processes on CPU {cpus}"


class BenchSetupError(RuntimeError):
    """A server under test could not be started; the message says why."""


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchSetupError(f"{name} exited with {proc.returncode}: {_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchSetupError(f"{name} not ready after {timeout:.0f}s: {_tail(log_path)}")


def _tail(path: Path, lines: int = 8) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def _running(
    cmd: list[str], *, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Gateway:
    """lmdeck under test: its chat URL with the admin key, its metrics URL and its process."""

    target: Target
    metrics_url: str
    pid: int


@contextlib.contextmanager
def lmdeck_gateway(config: Mapping[str, Any], data_dir: Path, workers: int) -> Iterator[Gateway]:
    """``lmdeck serve``; with ``workers > 1`` started as ``lmdeck serve --workers N``.

    ``BenchSetupError`` when serve refuses ``--workers`` (a build without it) or does not become ready.
    """
    if workers == 1:
        with gateway_process(config, data_dir=data_dir) as gw:
            yield Gateway(
                Target("lmdeck", f"{gw.base_url}/chat/completions", gw.headers()), f"{gw.url}/metrics", gw.proc.pid
            )
        return
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = data_dir / "lmdeck.yaml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    key = "sk-lmdeck-" + secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
    env.update({"LMDECK_DATA_DIR": str(data_dir), "LMDECK_ADMIN_KEY": key, "PYTHONUNBUFFERED": "1"})
    port = free_port()
    cmd = [sys.executable, "-c", "from lmdeck.cli.main import main; main()", "serve", "--config", str(config_path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    log_path = data_dir / "gateway.log"
    with _running(cmd, log_path=log_path, env=env, cwd=data_dir) as proc:
        try:
            _wait_ready(proc, f"http://127.0.0.1:{port}/health/ready", log_path, "lmdeck serve", 120)
        except BenchSetupError as exc:
            if "--workers" in str(exc) and ("unrecognized" in str(exc) or "no such option" in str(exc).lower()):
                raise BenchSetupError(
                    "this lmdeck serve has no --workers option: run without --workers/--scaling"
                ) from exc
            raise
        url = f"http://127.0.0.1:{port}"
        yield Gateway(
            Target("lmdeck", f"{url}/v1/chat/completions", {"authorization": f"Bearer {key}"}),
            f"{url}/metrics",
            proc.pid,
        )


def install_litellm(peers_dir: Path) -> Path:
    """LiteLLM's proxy in its own virtual environment under ``peers_dir`` (installed once); its ``litellm`` command."""
    venv = peers_dir / "litellm-venv"
    command = venv / "bin" / "litellm"
    if not command.exists():
        peers_dir.mkdir(parents=True, exist_ok=True)
        _install([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        _install([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], "pip install 'litellm[proxy]'")
    return command


def install_portkey(peers_dir: Path) -> Path:
    """Portkey's gateway installed with npm under ``peers_dir`` (once); the script node runs."""
    folder = peers_dir / "portkey"
    entry = folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not entry.exists():
        if not shutil.which("npm") or not shutil.which("node"):
            raise BenchSetupError("node and npm are not installed")
        folder.mkdir(parents=True, exist_ok=True)
        _install(["npm", "install", "--prefix", str(folder), "@portkey-ai/gateway"], "npm install @portkey-ai/gateway")
    return entry


def _install(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise BenchSetupError(f"{what} failed: {last[0]}")


@contextlib.contextmanager
def litellm_proxy(upstream_base: str, log_dir: Path, peers_dir: Path) -> Iterator[tuple[Target, int]]:
    """LiteLLM's proxy routing model ``bench`` to the fake upstream as an OpenAI-compatible provider (no DB)."""
    command = install_litellm(peers_dir)
    config = {
        "model_list": [
            {
                "model_name": BODY["model"],
                "litellm_params": {"model": "openai/fake-model", "api_base": upstream_base, "api_key": "sk-fake"},
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        # Without a master key the proxy refuses to start; no database is configured, so keys are not stored.
        "general_settings": {"master_key": LITELLM_KEY},
    }
    config_path = log_dir / "litellm.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    # The bundled model cost map: the proxy would otherwise fetch it from the network at start.
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    port = free_port()
    cmd = [
        str(command),
        "--config",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    log_path = log_dir / "litellm.log"
    with _running(cmd, log_path=log_path, env=env, cwd=log_dir) as proc:
        _wait_ready(proc, f"http://127.0.0.1:{port}/health/liveliness", log_path, "LiteLLM proxy", 180)
        yield (
            Target(
                "litellm", f"http://127.0.0.1:{port}/v1/chat/completions", {"authorization": f"Bearer {LITELLM_KEY}"}
            ),
            proc.pid,
        )


@contextlib.contextmanager
def portkey_gateway(upstream_base: str, log_dir: Path, peers_dir: Path) -> Iterator[tuple[Target, int]]:
    """Portkey's gateway (node, headless) sending every request to the fake upstream as provider ``openai``."""
    entry = install_portkey(peers_dir)
    port = free_port()
    log_path = log_dir / "portkey.log"
    env = {**os.environ, "NODE_ENV": "production"}
    with _running(
        ["node", str(entry), f"--port={port}", "--headless"], log_path=log_path, env=env, cwd=log_dir
    ) as proc:
        _wait_ready(proc, f"http://127.0.0.1:{port}/", log_path, "Portkey gateway", 60)
        headers = {
            "authorization": "Bearer sk-fake",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": upstream_base,
        }
        yield Target("portkey", f"http://127.0.0.1:{port}/v1/chat/completions", headers), proc.pid


PEERS = {"litellm": litellm_proxy, "portkey": portkey_gateway}


@dataclass
class Measured:
    """Every path's wrk run per load, and streamed runs per path; a path that did not run has a reason."""

    loads: list[str] = field(default_factory=list)
    runs: dict[tuple[str, str], Run] = field(default_factory=dict)
    streams: dict[str, StreamRun] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


def format_table(m: Measured) -> list[str]:
    """The latency/throughput table and the added-latency table against ``direct``, as lines."""
    lines = [f"{'load':<12}{'path':<10}{'achieved rps':>14}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}"]
    for load in m.loads:
        for path in m.paths:
            if path in m.not_run:
                lines.append(f"{load:<12}{path:<10}  not run: {m.not_run[path]}")
                continue
            run = m.runs[(load, path)]
            lines.append(
                f"{load:<12}{path:<10}{run.rps:>14.0f}{run.p50_us / 1000:>10.2f}{run.p90_us / 1000:>10.2f}"
                f"{run.p99_us / 1000:>10.2f}{run.errors + run.status_errors:>8}"
            )
    lines.append("")
    compared = [p for p in m.paths if p != "direct" and p not in m.not_run]
    # With lmdeck alone the path column is left out, as the table has always been printed.
    named = len(compared) > 1

    def path_col(path: str) -> str:
        return f"{path:<10}" if named else ""

    lines.append(
        f"{'load':<12}{path_col('path')}{'added p50 ms':>14}{'added p99 ms':>14}{'p99 ratio':>11}{'rps ratio':>11}"
    )
    for load in m.loads:
        base = m.runs[(load, "direct")]
        for path in compared:
            run = m.runs[(load, path)]
            lines.append(
                f"{load:<12}{path_col(path)}{(run.p50_us - base.p50_us) / 1000:>14.2f}{(run.p99_us - base.p99_us) / 1000:>14.2f}"
                f"{run.p99_us / max(base.p99_us, 1):>11.2f}{run.rps / max(base.rps, 1e-9):>11.2f}"
            )
    return lines


def format_stream_table(m: Measured, rate: float) -> list[str]:
    """Streamed chat: time to first token and whole stream per path, and what each adds over ``direct``."""
    if not m.streams:
        return []
    lines = [
        f"streamed chat at {rate:.0f} requests/s (aiohttp client on the load core)",
        f"{'path':<10}{'streams':>9}{'chunks':>8}{'TTFT p50':>10}{'TTFT p99':>10}{'total p50':>11}{'total p99':>11}{'errors':>8}",
    ]
    for path in m.paths:
        if path in m.not_run:
            lines.append(f"{path:<10}  not run: {m.not_run[path]}")
            continue
        s = m.streams[path]
        if not s.ttft_us:
            lines.append(f"{path:<10}  no stream completed ({s.errors} errors): {s.first_error}")
            continue
        lines.append(
            f"{path:<10}{len(s.ttft_us):>9}{s.mean_chunks:>8.0f}{s.ttft(50) / 1000:>10.2f}{s.ttft(99) / 1000:>10.2f}"
            f"{s.total(50) / 1000:>11.2f}{s.total(99) / 1000:>11.2f}{s.errors:>8}"
        )
    base = m.streams["direct"]
    lines.append("")
    lines.append(
        f"{'path':<10}{'added TTFT p50 ms':>19}{'added TTFT p99 ms':>19}{'TTFT p50 ratio':>16}{'added us/chunk':>16}"
    )
    for path in m.paths:
        run = m.streams.get(path)
        if path == "direct" or run is None or not run.ttft_us:
            continue
        per_chunk = (run.total(50) - base.total(50)) / max(run.mean_chunks, 1.0)
        lines.append(
            f"{path:<10}{(run.ttft(50) - base.ttft(50)) / 1000:>19.2f}{(run.ttft(99) - base.ttft(99)) / 1000:>19.2f}"
            f"{run.ttft(50) / max(base.ttft(50), 1.0):>16.2f}{per_chunk:>16.1f}"
        )
    lines.append("(ms unless said; added us/chunk = (total p50 - direct total p50) / chunks)")
    return lines


def measure(targets: list[Target], args: argparse.Namespace, script: Path, m: Measured, plan: CorePlan) -> None:
    """Warm each path up, then wrk every load on every path (direct first), then the streamed load."""
    for t in targets:
        wrk(t.url, rate=None, duration=2, connections=4, headers=t.headers, script=script)
    for rate in parse_rates(args.rates):
        label = f"{rate:.0f} rps"
        if label not in m.loads:
            m.loads.append(label)
        for t in targets:
            m.runs[(label, t.name)] = wrk(
                t.url, rate=rate, duration=args.duration, connections=args.connections, headers=t.headers, script=script
            )
    if "saturation" not in m.loads:
        m.loads.append("saturation")
    for t in targets:
        m.runs[("saturation", t.name)] = wrk(
            t.url,
            rate=None,
            duration=args.duration,
            connections=args.saturation_connections,
            headers=t.headers,
            script=script,
        )
    if args.stream:
        for t in targets:
            m.streams[t.name] = stream_load(t, rate=args.stream_rate, duration=args.duration, cpus=plan.load)


def _config(fake_base: str) -> dict[str, Any]:
    return {
        "default_routes": False,
        "routes": [{"name": "bench", "targets": [{"provider": "openai", "model": "m", "base_url": fake_base}]}],
    }


def _check(target: Target) -> None:
    response = httpx.post(target.url, json=BODY, headers=target.headers, timeout=30)
    if response.status_code != 200:
        raise BenchSetupError(f"{target.name} answered {response.status_code}: {response.text[:300]}")


def run_overhead(args: argparse.Namespace, tmp: Path, script: Path) -> int:
    plan = core_plan(args.workers, len(os.sched_getaffinity(0)))
    m = Measured(paths=["direct", "lmdeck"])
    spool_line = ""
    store_note = ""
    reply = " ".join(["tok"] * args.stream_chunks)
    with fake_upstream_process(latency_ms=0, log_dir=tmp) as fake:
        fake.configure(answers={STREAM_PROMPT: reply})
        pin(fake.proc.pid, plan.upstream)
        direct = Target("direct", f"{fake.base_url}/chat/completions")
        with lmdeck_gateway(_config(fake.base_url), tmp / "gw", args.workers) as gw:
            pin(gw.pid, plan.lmdeck)
            _check(gw.target)
            store_note = pin_store_processes(gw.pid, args.workers, args.store_cpus)
            measure([direct, gw.target], args, script, m, plan)
            time.sleep(1.0)
            metrics = httpx.get(gw.metrics_url, timeout=10).text
            spool_line = next((ln for ln in metrics.splitlines() if ln.startswith("lmdeck_spool_depth")), "")
        for name in args.peers:
            m.paths.append(name)
            try:
                with PEERS[name](fake.base_url, tmp, PEERS_DIR) as (target, pid):
                    pin(pid, plan.lmdeck)
                    _check(target)
                    # The direct rows stay those measured with lmdeck; the peer's own run follows them.
                    measure([target], args, script, m, plan)
            except (BenchSetupError, subprocess.TimeoutExpired, OSError) as exc:
                m.not_run[name] = " ".join(str(exc).split())[:200]

    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    print(f"lmdeck gateway overhead (fake upstream, zero latency; auth, tracing and metrics on; {workers})")
    print(f"{plan.note()}; {store_note}")
    print("\n".join(format_table(m)))
    if m.streams:
        print()
        print("\n".join(format_stream_table(m, args.stream_rate)))
    lm_sat = m.runs[("saturation", "lmdeck")]
    per = "worker" if args.workers == 1 else f"{workers} together"
    print(f"\nmax rps per lmdeck {per} (saturation, {args.saturation_connections} connections): {lm_sat.rps:.0f}")
    if spool_line:
        print(f"after the run: {spool_line}")
    return 0


def run_scaling(args: argparse.Namespace, tmp: Path, script: Path) -> int:
    """Saturation through lmdeck with 1 and ``max(2, --workers)`` workers, each against direct in the same sitting."""
    cores = len(os.sched_getaffinity(0))
    counts = [1, max(2, args.workers)]
    results: list[tuple[int, CorePlan, Run, Run]] = []
    store_note = ""
    with fake_upstream_process(latency_ms=0, log_dir=tmp) as fake:
        direct = Target("direct", f"{fake.base_url}/chat/completions")
        for workers in counts:
            plan = core_plan(workers, cores)
            pin(fake.proc.pid, plan.upstream)
            with lmdeck_gateway(_config(fake.base_url), tmp / f"gw-{workers}", workers) as gw:
                pin(gw.pid, plan.lmdeck)
                _check(gw.target)
                store_note = pin_store_processes(gw.pid, workers, args.store_cpus)
                for t in (direct, gw.target):
                    wrk(t.url, rate=None, duration=2, connections=4, headers=t.headers, script=script)
                conns = args.saturation_connections
                base = wrk(direct.url, rate=None, duration=args.duration, connections=conns, headers={}, script=script)
                lm = wrk(
                    gw.target.url,
                    rate=None,
                    duration=args.duration,
                    connections=conns,
                    headers=gw.target.headers,
                    script=script,
                )
                results.append((workers, plan, base, lm))
    print(store_note)
    print(f"lmdeck worker scaling (saturation, {args.saturation_connections} connections, {cores} cores)")
    print(f"{'workers':<9}{'direct rps':>12}{'lmdeck rps':>12}{'p99 ms':>9}  pinning")
    for workers, plan, base, lm in results:
        print(f"{workers:<9}{base.rps:>12.0f}{lm.rps:>12.0f}{lm.p99_us / 1000:>9.2f}  {plan.note()}")
    (n, _, _, lm_n), (_, _, _, lm_1) = results[-1], results[0]
    print(f"\nscaling ratio rps({n}) / rps(1) / {n}: {scaling_ratio(lm_n.rps, lm_1.rps, n):.2f} (1.00 = linear)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--peers`` alone means both peers, ``--peers litellm`` one of them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rates", default="100,500", help="fixed request rates to hold (requests/s)")
    parser.add_argument("--connections", type=int, default=10, help="wrk connections at fixed rates")
    parser.add_argument("--saturation-connections", type=int, default=32)
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip the streamed chat rows")
    parser.add_argument("--stream-rate", type=float, default=50.0, help="streamed requests started per second")
    parser.add_argument("--stream-chunks", type=int, default=64, help="token chunks in each streamed answer")
    parser.add_argument("--workers", type=int, default=1, help="lmdeck serve --workers N (passed only when N > 1)")
    parser.add_argument("--scaling", action="store_true", help="saturation with 1 and 2 (or --workers) workers")
    parser.add_argument(
        "--store-cpus",
        default=None,
        help="pin lmdeck's trace store processes (lmdeck-writer) to these CPUs, a taskset list such as 0 "
        "(default: they stay on lmdeck's CPUs)",
    )
    parser.add_argument(
        "--peers",
        nargs="?",
        const="litellm,portkey",
        default="",
        help="also LiteLLM's proxy and Portkey's gateway (installed under bench/.peers), or a comma list of them",
    )
    args = parser.parse_args(argv)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer {unknown[0]!r}: choose from {', '.join(PEERS)}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        parse_rates(args.rates)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lmdeck-bench-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        try:
            if args.scaling:
                return run_scaling(args, Path(tmp), script)
            return run_overhead(args, Path(tmp), script)
        except BenchSetupError as exc:
            print(f"benchmark not run: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    raise SystemExit(main())
