"""What durable tracing costs a request: the spool against an in-memory sink, in the same run.

    python bench/spool.py                          # 4000 records at concurrency 1 and 64
    python bench/spool.py --records 20000 --concurrency 1,16,256 --dir /var/tmp

Each scenario submits records shaped like a real chat trace (about 1.5 KB of
JSON) from concurrent coroutines, each awaiting its record's acknowledgement
before sending the next, as the record step does before a response completes:

- ``memory``: :class:`MemoryTraceSink`, acknowledged at once (the baseline);
- ``spool-nofsync``: the spool writing its segments without fsync;
- ``spool``: the spool as the gateway runs it (fsync, group commit);
- ``sink``: the spool plus the store writer filling SQLite, timed until all is stored.

Printed per scenario: records/s, acknowledgement latency (p50, p99), event-loop
time spent inside ``submit`` per record, fsyncs, and each figure as a ratio to
the memory baseline at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.memory import MemoryTraceSink
from lmdeck.tracing.sink import DurableTraceSink
from lmdeck.tracing.spool import TraceSpool


class Sink(Protocol):
    def submit(self, record: TraceRecord) -> asyncio.Future[None]: ...


def make_record(n: int) -> TraceRecord:
    prompt = "Summarise the following paragraph in one sentence. " * 8
    return TraceRecord(
        request_id=f"req_bench_{n}",
        route="demo",
        target="openai:gpt-4o-mini",
        provider="openai",
        upstream_model="gpt-4o-mini",
        key_id="key_bench",
        team_id="team_bench",
        input_tokens=120,
        output_tokens=40,
        cost=0.00012,
        latency_ms=412.5,
        ttft_ms=88.0,
        tags=["bench", "eu"],
        metadata={"app": "bench"},
        request_body={"model": "demo", "messages": [{"role": "user", "content": prompt}], "temperature": 0.2},
        response_body={"choices": [{"message": {"content": "A short summary. " * 10}}]},
    )


@dataclass
class Result:
    scenario: str
    concurrency: int
    records: int
    seconds: float
    latencies_us: list[float]
    submit_us: float
    fsyncs: int | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_us)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def drive(sink: Sink, records: list[TraceRecord], concurrency: int) -> tuple[float, list[float], float]:
    """(seconds, ack latencies in µs, mean µs inside submit) for ``records`` sent by ``concurrency`` coroutines."""
    latencies: list[float] = []
    inside: list[float] = []
    it = iter(records)

    async def submitter() -> None:
        for record in it:
            t0 = time.perf_counter()
            future = sink.submit(record)
            t1 = time.perf_counter()
            await future
            latencies.append((time.perf_counter() - t0) * 1e6)
            inside.append((t1 - t0) * 1e6)

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, statistics.fmean(inside)


def run_memory(_: Path, records: list[TraceRecord], concurrency: int) -> Result:
    seconds, lat, inside = asyncio.run(drive(MemoryTraceSink(), records, concurrency))
    return Result("memory", concurrency, len(records), seconds, lat, inside)


def _run_spool(directory: Path, records: list[TraceRecord], concurrency: int, fsync: bool) -> Result:
    spool = TraceSpool(directory, fsync=fsync)
    spool.open()
    try:
        seconds, lat, inside = asyncio.run(drive(spool, records, concurrency))
    finally:
        spool.close()
    name = "spool" if fsync else "spool-nofsync"
    return Result(name, concurrency, len(records), seconds, lat, inside, spool.batches if fsync else None)


def run_spool_nofsync(directory: Path, records: list[TraceRecord], concurrency: int) -> Result:
    return _run_spool(directory, records, concurrency, fsync=False)


def run_spool(directory: Path, records: list[TraceRecord], concurrency: int) -> Result:
    return _run_spool(directory, records, concurrency, fsync=True)


def run_sink(directory: Path, records: list[TraceRecord], concurrency: int) -> Result:
    settings = Settings(data_dir=directory)
    db = Database(settings.store_url)
    db.migrate()
    sink = DurableTraceSink.from_settings(settings, db)

    async def go() -> tuple[float, list[float], float]:
        await sink.start()
        start = time.perf_counter()
        _, lat, inside = await drive(sink, records, concurrency)
        if not await sink.stored(120):
            raise SystemExit("the store writer did not catch up within 120s")
        seconds = time.perf_counter() - start
        await sink.stop()
        return seconds, lat, inside

    try:
        seconds, lat, inside = asyncio.run(go())
    finally:
        db.dispose()
    return Result("sink", concurrency, len(records), seconds, lat, inside, sink.spool.batches)


SCENARIOS: dict[str, Callable[[Path, list[TraceRecord], int], Result]] = {
    "memory": run_memory,
    "spool-nofsync": run_spool_nofsync,
    "spool": run_spool,
    "sink": run_sink,
}


def report(results: list[Result]) -> None:
    base = {r.concurrency: r for r in results if r.scenario == "memory"}
    header = f"{'scenario':<14}{'conc':>5}{'rec/s':>10}{'x base':>8}{'p50 µs':>9}{'p99 µs':>9}{'submit µs':>10}{'x base':>8}{'fsyncs':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        b = base[r.concurrency]
        fsyncs = "-" if r.fsyncs is None else str(r.fsyncs)
        print(
            f"{r.scenario:<14}{r.concurrency:>5}{r.rate:>10.0f}{r.rate / b.rate:>8.2f}"
            f"{r.pct(0.5):>9.0f}{r.pct(0.99):>9.0f}{r.submit_us:>10.1f}{r.submit_us / b.submit_us:>8.2f}{fsyncs:>8}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--concurrency", default="1,64", help="comma-separated numbers of concurrent submitters")
    parser.add_argument("--dir", default=None, help="directory for the spool (default: a temporary one)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    names = ["memory", *(s for s in args.scenarios.split(",") if s != "memory")]
    results: list[Result] = []
    for concurrency in levels:
        for name in names:
            records = [make_record(n) for n in range(args.records)]
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                results.append(SCENARIOS[name](Path(tmp) / "spool", records, concurrency))
    print(f"{args.records} records per run, python {sys.version.split()[0]}\n")
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
