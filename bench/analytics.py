"""Trace analytics at scale: load traces through the store writer, then time the console's queries.

    python bench/analytics.py                      # 1,000,000 traces on SQLite and PostgreSQL
    python bench/analytics.py --traces 200000      # a smaller run
    python bench/analytics.py --large              # 10,000,000 traces
    python bench/analytics.py --backends sqlite    # one backend

For each backend (SQLite in a temporary directory; PostgreSQL at ``--postgres-url``,
default ``LMDECK_TEST_POSTGRES_URL`` as ``scripts/test-services.sh`` sets it, in a
scratch database dropped afterwards):

1. Writes ``--traces`` synthetic traces (30 days, 6 routes, 4 teams, 20 keys; see
   ``lmdeck.testing.traces``) as spool segments and lets the real ``StoreWriter``
   store them (rollups and search index maintained in the same transactions), timing
   its throughput. A smaller load into fresh stores measures the writer with rollups
   and search off, and with rollups on and search off, in the same run.
2. Times each console/alert query ``--repeat`` times (p50 and p95 of those runs): spend
   by route/team/key over 30 days, p50/p95/p99 latency per route per hour over 7 days,
   error rate per target per minute over the last hour, text search (a rare and a
   common word), filtered listings. The same questions asked of the raw ``traces``
   table (what lmdeck did before the rollups) are timed once as the baseline.
3. On SQLite (``--gateway``, the default), starts a real ``lmdeck serve`` on the loaded
   store in front of the FAKE upstream (``--upstream-ms`` of latency) and measures the
   p50/p99 of sequential chat requests idle, then while two clients keep asking the
   analytics API (spend, summary, search, listings) of the same process.

Prints one JSON document (``--out`` writes it too). Timings depend on the machine and
its load: the numbers in docs/benchmarks.md say which machine and how busy it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.policy.spend import SpendReports
from lmdeck.testing.servers import fake_upstream_process, gateway_process
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.codec import encode
from lmdeck.tracing.query import TraceQuery
from lmdeck.tracing.segments import segment_name
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.writer import StoreWriter

DAY = 86400.0
SPAN = 30 * DAY
CHUNK = 50_000
RARE_WORD = "c0ffee"  # six hex digits of a request's random tag: (almost) no trace has them
COMMON_WORD = "invoice"


# -- loading ---------------------------------------------------------------------------------


def write_segments(directory: Path, n: int, start: float, seed: int = 1) -> None:
    """``n`` traces over ``[start, start + SPAN)`` as spool segments, generated a chunk at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    chunks = max(math.ceil(n / CHUNK), 1)
    width = SPAN / chunks
    for i in range(chunks):
        size = min(CHUNK, n - i * CHUNK)
        records = synthetic_traces(size, start=start + i * width, span_s=width, seed=seed * 100_003 + i)
        (directory / segment_name(i + 1)).write_bytes(b"".join(encode(r) for r in records))


def load(store: SQLTraceStore, segments: Path, *, batch_size: int = 1000) -> dict[str, float]:
    """Let a StoreWriter store every segment in ``segments``; its throughput."""
    spool = TraceSpool(segments, fsync=False)
    spool.open()
    writer = StoreWriter(spool.segments, store, batch_size=batch_size)
    started = time.perf_counter()
    writer.start()
    try:
        if not writer.wait_idle(6 * 3600):
            raise RuntimeError("the writer did not catch up")
        elapsed = time.perf_counter() - started
    finally:
        spool.close()
        writer.stop(60)
    return {"traces": writer.stored, "seconds": round(elapsed, 2), "traces_per_s": round(writer.stored / elapsed)}


# -- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    runs.sort()
    p95 = runs[min(len(runs) - 1, math.ceil(0.95 * len(runs)) - 1)]
    return {"p50_ms": round(statistics.median(runs), 1), "p95_ms": round(p95, 1), "runs": repeat}


def queries(db: Database, now: float) -> dict[str, Callable[[], Any]]:
    signals = Signals(db)
    reports = SpendReports(db)
    store = SQLTraceStore(db)
    month, week, hour = now - SPAN, now - 7 * DAY, now - 3600

    def page_two() -> Any:
        first = store.query(TraceQuery(team_id="team-b", route="chat", limit=50))
        return store.query(TraceQuery(team_id="team-b", route="chat", limit=50).after(first.next_cursor))

    return {
        "spend by route, 30 days": lambda: reports.report(by="route", period="total", now=now, since=month),
        "spend by team, 30 days": lambda: reports.report(by="team", period="total", now=now, since=month),
        "spend by key, 30 days": lambda: reports.report(by="key", period="total", now=now, since=month),
        "latency p50/p95/p99 per route per hour, 7 days": lambda: signals.series(
            step=3600, by=("route",), since=week, until=now, quantiles=(0.5, 0.95, 0.99)
        ),
        "error rate per target per minute, last hour": lambda: signals.series(
            step=60, by=("target",), since=hour, until=now
        ),
        "search, rare text (newest 50)": lambda: store.query(TraceQuery(q=RARE_WORD, limit=50)),
        "search, common word (newest 50)": lambda: store.query(TraceQuery(q=COMMON_WORD, limit=50)),
        "list status=error (newest 50)": lambda: store.query(TraceQuery(errors=True, limit=50)),
        "list team+route, page 2": page_two,
        "list newest 50": lambda: store.query(TraceQuery(limit=50)),
    }


def baselines(db: Database, now: float) -> dict[str, Callable[[], Any]]:
    """The same questions of the raw traces, as lmdeck asked them before the rollups."""
    month, week = now - SPAN, now - 7 * DAY

    def scan(sql: str, **params: Any) -> Callable[[], Any]:
        def run() -> Any:
            with db.engine.connect() as conn:
                return conn.execute(text(sql), params).all()

        return run

    def latency() -> Any:
        rows = scan(
            "SELECT route, FLOOR(created_at / 3600), latency_ms FROM traces WHERE created_at >= :s AND created_at < :u",
            s=week,
            u=now,
        )()
        groups: dict[tuple[Any, Any], list[float]] = {}
        for route, bucket, ms in rows:
            groups.setdefault((route, bucket), []).append(ms)
        return {k: [sorted(v)[math.floor(q * (len(v) - 1))] for q in (0.5, 0.95, 0.99)] for k, v in groups.items()}

    spend = (
        "SELECT {col}, SUM(cost_micros), COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM traces "
        "WHERE created_at >= :s GROUP BY {col}"
    )
    text_cast = "CAST({c} AS TEXT)" if db.engine.dialect.name == "sqlite" else "{c}::text"
    search = " OR ".join(
        f"lower({text_cast.format(c=c)}) LIKE :p" for c in ("error", "metadata", "request_body", "response_body")
    )
    return {
        "spend by route, 30 days": scan(spend.format(col="route"), s=month),
        "spend by team, 30 days": scan(spend.format(col="team_id"), s=month),
        "spend by key, 30 days": scan(spend.format(col="key_id"), s=month),
        "latency p50/p95/p99 per route per hour, 7 days": latency,
        "error rate per target per minute, last hour": scan(
            "SELECT target, FLOOR(created_at / 60), COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) "
            "FROM traces WHERE created_at >= :s GROUP BY 1, 2",
            s=now - 3600,
        ),
        "search, rare text (newest 50)": scan(
            f"SELECT id FROM traces WHERE {search} ORDER BY created_at DESC LIMIT 50", p=f"%{RARE_WORD}%"
        ),
        "search, common word (newest 50)": scan(
            f"SELECT id FROM traces WHERE {search} ORDER BY created_at DESC LIMIT 50", p=f"%{COMMON_WORD}%"
        ),
    }


# -- the gateway under analytics load ----------------------------------------------------------


def latencies(client: httpx.Client, url: str, headers: dict[str, str], count: int) -> list[float]:
    body = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    out = []
    for _ in range(count):
        started = time.perf_counter()
        client.post(url, json=body, headers=headers).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 1),
        "requests": len(ordered),
    }


def gateway_under_load(data_dir: Path, now: float, requests: int, upstream_ms: float) -> dict[str, Any]:
    with fake_upstream_process(latency_ms=upstream_ms, log_dir=str(data_dir)) as fake:
        config = {
            "default_routes": False,
            "routes": [{"name": "bench", "targets": [{"provider": "openai", "model": "m", "base_url": fake.base_url}]}],
            # The loaded traces reach back past raw_days: no pruning in the middle of the measurement.
            "tracing": {"retention": {"prune_interval_s": None}},
        }
        with gateway_process(config, data_dir=data_dir) as gw, httpx.Client(timeout=60) as client:
            url = f"{gw.base_url}/chat/completions"
            latencies(client, url, gw.headers(), 30)  # warm up
            idle = latencies(client, url, gw.headers(), requests)
            stop = threading.Event()
            answered: list[tuple[str, int, float]] = []
            paths = [
                ("/api/spend", {"by": "route", "period": "total", "since": str(now - SPAN)}),
                ("/api/spend", {"by": "team", "period": "total", "since": str(now - SPAN)}),
                (
                    "/api/traces/summary",
                    {"by": "route", "step": "3600", "since": str(now - 7 * DAY), "quantiles": "0.5,0.95,0.99"},
                ),
                ("/api/traces", {"q": RARE_WORD}),
                ("/api/traces", {"status": "error"}),
            ]

            def ask() -> None:
                with httpx.Client(timeout=120) as analytics:
                    i = 0
                    while not stop.is_set():
                        path, params = paths[i % len(paths)]
                        i += 1
                        started = time.perf_counter()
                        status = analytics.get(f"{gw.url}{path}", params=params, headers=gw.headers()).status_code
                        answered.append((path, status, (time.perf_counter() - started) * 1000))

            askers = [threading.Thread(target=ask, daemon=True) for _ in range(2)]
            for t in askers:
                t.start()
            time.sleep(1.0)
            busy = latencies(client, url, gw.headers(), requests)
            stop.set()
            for t in askers:
                t.join(180)
    ok = [ms for _, status, ms in answered if status == 200]
    idle_s, busy_s = summary(idle), summary(busy)
    return {
        "upstream_ms": upstream_ms,
        "idle": idle_s,
        "during_queries": busy_s,
        "p99_rise_pct": round(100 * (busy_s["p99_ms"] / idle_s["p99_ms"] - 1), 1),
        "analytics_requests": len(answered),
        "analytics_non_200": len(answered) - len(ok),
        "analytics_p50_ms": round(statistics.median(ok), 1) if ok else None,
    }


# -- the run ---------------------------------------------------------------------------------


@contextmanager
def backend(name: str, tmp: Path, postgres_url: str | None) -> Iterator[tuple[str, Path]]:
    if name == "sqlite":
        data_dir = tmp / "sqlite"
        data_dir.mkdir(parents=True)
        yield f"sqlite:///{data_dir / 'lmdeck.db'}", data_dir
        return
    if not postgres_url:
        raise SystemExit("--backends postgresql needs --postgres-url or LMDECK_TEST_POSTGRES_URL")
    with scratch_database(postgres_url) as url:
        yield url, tmp / "pg"


def run_backend(name: str, args: argparse.Namespace, tmp: Path, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": name}
    small = min(args.traces, args.writer_sample)
    for label, rollups, search in (("rollups and search off", False, False), ("rollups on, search off", True, False)):
        with backend(name, tmp / f"{name}-{rollups}", args.postgres_url) as (url, _):
            db = Database(url)
            db.migrate()
            write_segments(tmp / f"seg-{name}-{label}", small, now - SPAN, seed=2)
            out.setdefault("writer", {})[label] = load(
                SQLTraceStore(db, rollups=rollups, search=search), tmp / f"seg-{name}-{label}"
            )
            db.dispose()
    with backend(name, tmp, args.postgres_url) as (url, data_dir):
        db = Database(url)
        db.migrate()
        write_segments(tmp / f"seg-{name}", args.traces, now - SPAN)
        out["writer"]["rollups and search on (the full load)"] = load(SQLTraceStore(db), tmp / f"seg-{name}")
        print(f"{name}: stored {args.traces} traces: {out['writer']}", file=sys.stderr, flush=True)
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        timings = {}
        for label, fn in queries(db, now).items():
            fn()  # warm the cache once, as a console that is in use would have it
            timings[label] = timed(fn, args.repeat)
        for label, fn in baselines(db, now).items():
            timings[label]["baseline_raw_ms"] = timed(fn, 1)["p50_ms"]
            timings[label]["speedup"] = round(
                timings[label]["baseline_raw_ms"] / max(timings[label]["p50_ms"], 0.01), 1
            )
        out["queries"] = timings
        out["goal_300ms_p95_met"] = all(t["p95_ms"] < 300 for t in timings.values())
        db.dispose()
        if args.gateway and name == "sqlite":
            out["gateway"] = gateway_under_load(data_dir, now, args.requests, args.upstream_ms)
    return out


def table(result: dict[str, Any]) -> str:
    """The results as the Markdown tables of docs/benchmarks.md."""
    lines = []
    for b in result["backends"]:
        lines += [
            f"**{b['backend']}**, {result['traces']:,} traces",
            "",
            "| query | p50 ms | p95 ms | raw scan ms (before) | speed-up | < 300 ms p95 |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, t in b["queries"].items():
            raw = t.get("baseline_raw_ms")
            lines.append(
                f"| {name} | {t['p50_ms']} | {t['p95_ms']} | {raw if raw is not None else '-'} | "
                f"{str(t['speedup']) + 'x' if 'speedup' in t else '-'} | {'yes' if t['p95_ms'] < 300 else 'no'} |"
            )
        lines += ["", "| writer | traces | traces/s |", "| --- | ---: | ---: |"]
        for name, w in b["writer"].items():
            lines.append(f"| {name} | {w['traces']:,} | {w['traces_per_s']:,} |")
        gw = b.get("gateway")
        if gw:
            lines += [
                "",
                f"Gateway on the fake upstream ({gw['upstream_ms']:g} ms), {gw['idle']['requests']} sequential chat "
                "requests each:",
                "",
                "| | p50 ms | p99 ms |",
                "| --- | ---: | ---: |",
                f"| idle | {gw['idle']['p50_ms']} | {gw['idle']['p99_ms']} |",
                f"| during analytics queries | {gw['during_queries']['p50_ms']} | {gw['during_queries']['p99_ms']} |",
                "",
                f"p99 rise: {gw['p99_rise_pct']} %; {gw['analytics_requests']} analytics requests answered meanwhile "
                f"({gw['analytics_non_200']} not 200, p50 {gw['analytics_p50_ms']} ms).",
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces to load (default 1,000,000)")
    parser.add_argument("--large", action="store_true", help="load 10,000,000 traces")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("LMDECK_TEST_POSTGRES_URL"))
    parser.add_argument("--repeat", type=int, default=7, help="runs of each query")
    parser.add_argument("--writer-sample", type=int, default=100_000, help="traces for the rollups-off writer runs")
    parser.add_argument("--requests", type=int, default=300, help="chat requests per gateway measurement")
    parser.add_argument("--upstream-ms", type=float, default=50.0, help="the fake upstream's latency")
    parser.add_argument("--no-gateway", dest="gateway", action="store_false", help="skip the gateway measurement")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--table", type=Path, help="print the Markdown tables of a saved --out JSON, run nothing")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if args.large:
        args.traces = 10_000_000
    now = time.time()
    result: dict[str, Any] = {
        "traces": args.traces,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "backends": [],
    }
    with tempfile.TemporaryDirectory(prefix="lmdeck-bench-analytics-") as tmp:
        for name in args.backends.split(","):
            result["backends"].append(run_backend(name.strip(), args, Path(tmp), now))
            print(json.dumps(result["backends"][-1]), file=sys.stderr, flush=True)  # each backend as it ends
    result["load_average_at_end"] = os.getloadavg()
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
