"""Where one lmdeck worker's time goes at saturation: CPU per request by thread and process, and a profile.

    python bench/gateway_profile.py                          # CPU per request, then a 10 s py-spy profile
    python bench/gateway_profile.py --store-cpus 0           # the store process on the load's core
    python bench/gateway_profile.py --thread-writer          # tracing.writer_process: false, for comparison
    python bench/gateway_profile.py --raw out.txt            # also keep py-spy's raw stacks

Starts the FAKE upstream and ``lmdeck serve`` as ``bench/gateway_overhead.py`` does
(same configuration and pinning: lmdeck on CPU 1, wrk and the upstream on CPU 0),
drives it with wrk at saturation (32 connections) for ``--duration`` seconds and
reads the CPU time (utime + stime, ``/proc``) each thread of the worker and its
store process used, divided by the requests served: CPU per request, which moves
less than requests/s on a shared machine. Then py-spy records the worker (``--gil``:
only the thread holding the interpreter lock, which is what bounds a worker) under
the same load and prints the share of samples by where the innermost frame is
(pipeline steps, middleware, the upstream client, ...) and the top frames by own time.
Requires wrk and py-spy (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_overhead as overhead

from lmdeck.testing.servers import fake_upstream_process

#: Where a sample's innermost frame is, first match wins: (substring of the frame, share name).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("sqlalchemy", "SQLAlchemy"),
    ("pydantic", "pydantic"),
    ("aiohttp", "aiohttp (upstream client)"),
    ("uvicorn", "uvicorn"),
    ("starlette", "Starlette/FastAPI"),
    ("fastapi", "Starlette/FastAPI"),
    ("asyncio", "asyncio"),
    ("multiprocessing", "store process pipe"),
    ("lmdeck/tracing", "lmdeck tracing (spans, spool submit, metrics)"),
    ("lmdeck/app", "lmdeck middleware"),
    ("lmdeck/providers", "lmdeck providers"),
    ("lmdeck/", "lmdeck pipeline steps"),
)


def category(frames: list[str]) -> str:
    """The share a py-spy stack (outermost frame first) counts toward."""
    if frames and frames[0].startswith("Thread._bootstrap"):
        stack = ";".join(frames)
        if "StoreWriter" in stack:
            return "store writer thread"
        if "TraceSpool" in stack:
            return "spool thread (write, fsync)"
        return "other threads"
    leaf = frames[-1] if frames else ""
    for key, name in CATEGORIES:
        if key in leaf:
            return name
    return "other (event loop, C code)"


def summarize(lines: Iterable[str], top: int = 25) -> list[str]:
    """py-spy ``--format raw`` lines (``frame;frame;... count``) as two tables: shares, then top own-time frames."""
    shares: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        shares[category(frames)] += int(count)
        own[_short(frames[-1])] += int(count)
    if not total:
        return ["no samples"]
    out = [f"{total} samples", "", "| where | share |", "| --- | --- |"]
    out += [f"| {name} | {100 * n / total:.1f} % |" for name, n in shares.most_common()]
    out += ["", "| frame (own time) | share |", "| --- | --- |"]
    out += [f"| {name} | {100 * n / total:.1f} % |" for name, n in own.most_common(top)]
    return out


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in frame:
            head, _, tail = frame.partition(" (")
            return f"{head} ({tail.split(marker, 1)[-1]}"
    return frame


def _cpu_seconds(stat_path: Path) -> float:
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _cpu_seconds(task / "stat")
        except (OSError, ValueError, IndexError):
            continue
    return out


def _stores(pid: int) -> list[int]:
    return [p for p in overhead._descendants(pid) if overhead._comm(p) == "lmdeck-writer"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per measurement")
    parser.add_argument("--store-cpus", default=None, help="pin the store process to these CPUs (taskset list)")
    parser.add_argument("--thread-writer", action="store_true", help="tracing.writer_process: false")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="CPU per request only")
    parser.add_argument("--raw", type=Path, default=None, help="also write py-spy's raw stacks here")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset", *(["py-spy"] if args.profile else [])) if not shutil.which(tool)]
    if missing:
        print(f"not installed: {', '.join(missing)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lmdeck-profile-") as name:
        tmp = Path(name)
        script = tmp / "post.lua"
        script.write_text(overhead.LUA)
        with fake_upstream_process(latency_ms=0, log_dir=tmp) as fake:
            overhead.pin(fake.proc.pid, "0")
            config = overhead._config(fake.base_url)
            if args.thread_writer:
                config["tracing"] = {"writer_process": False}
            with overhead.lmdeck_gateway(config, tmp / "gw", 1) as gw:
                overhead.pin(gw.pid, "1")
                overhead._check(gw.target)
                note = "store inserts in the worker's thread"
                if not args.thread_writer:
                    note = overhead.pin_store_processes(gw.pid, 1, args.store_cpus)

                def load(seconds: float) -> overhead.Run:
                    return overhead.wrk(
                        gw.target.url,
                        rate=None,
                        duration=seconds,
                        connections=32,
                        headers=gw.target.headers,
                        script=script,
                    )

                load(3)  # warm up
                stores = _stores(gw.pid)
                before = _threads(gw.pid)
                stores_before = [_cpu_seconds(Path(f"/proc/{p}/stat")) for p in stores]
                run = load(args.duration)
                after = _threads(gw.pid)
                stores_after = [_cpu_seconds(Path(f"/proc/{p}/stat")) for p in stores]
                served = max(run.rps * args.duration, 1.0)
                print(f"lmdeck on CPU 1, wrk and the upstream on CPU 0; {note}")
                print(f"saturation: {run.rps:.0f} requests/s")
                print("CPU per request (ms):")
                for tid, seconds in sorted(after.items(), key=lambda kv: kv[1] - before.get(kv[0], 0.0), reverse=True):
                    used = seconds - before.get(tid, 0.0)
                    if used * 1000 / served >= 0.01:
                        label = "main thread (event loop)" if tid == gw.pid else f"thread {tid}"
                        print(f"  {label:<28}{used * 1000 / served:8.3f}")
                for pid, a, b in zip(stores, stores_before, stores_after, strict=True):
                    print(f"  {'store process ' + str(pid):<28}{(b - a) * 1000 / served:8.3f}")
                worker = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
                print(f"  {'worker process, all threads':<28}{worker * 1000 / served:8.3f}")
                if not args.profile:
                    return 0
                raw = tmp / "profile.txt"
                record_s = str(int(args.duration))
                cmd = ["py-spy", "record", "-p", str(gw.pid), "-r", "200", "-d", record_s, "-f", "raw", "-o", str(raw)]
                spy = subprocess.Popen(
                    [*cmd, "--nonblocking", "--gil"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                load(args.duration)
                spy.wait(args.duration + 60)
                lines = raw.read_text().splitlines() if raw.exists() else []
                if args.raw is not None:
                    args.raw.write_text("\n".join(lines) + "\n")
                print(f"\npy-spy --gil at 200 Hz for {args.duration:.0f} s under the same load")
                print("\n".join(summarize(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
