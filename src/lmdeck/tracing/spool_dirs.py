"""Where each serving process spools its traces, and the spools an earlier run left behind.

    spool_dir / ".lock", spool_dir / "0000000001.jsonl"       # one process (lmdeck serve)
    spool_dir / "worker-0" / ..., spool_dir / "worker-1" / ...   # lmdeck serve --workers 2

    holder = spool_holders(settings.spool_dir)             # pid of a live process spooling here, or None
    stored = replay_leftovers(settings, db, orphan_spools(settings.spool_dir, workers=2))

A spool that no live process holds is replayed into the store before serving starts: what
an earlier run acknowledged and had not yet stored is never lost, whether it ran with more
workers, fewer, or one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lmdeck.db import Database
from lmdeck.settings import Settings
from lmdeck.tracing.segments import existing_segments
from lmdeck.tracing.sink import DurableTraceSink
from lmdeck.tracing.spool import spool_holder

log = logging.getLogger(__name__)

_WORKER = re.compile(r"^worker-(\d+)$")


def worker_spool_dir(spool_dir: Path, index: int) -> Path:
    """The spool of worker ``index`` (0-based) of ``lmdeck serve --workers``."""
    return spool_dir / f"worker-{index}"


def worker_spool_dirs(spool_dir: Path) -> list[Path]:
    """Every ``worker-K`` spool under ``spool_dir``, by K."""
    if not spool_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in spool_dir.iterdir() if (m := _WORKER.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found)]


def spool_holders(spool_dir: Path) -> str | None:
    """The pid of a live process holding ``spool_dir`` or one of its worker spools; None when none does."""
    for directory in (spool_dir, *worker_spool_dirs(spool_dir)):
        holder = spool_holder(directory)
        if holder is not None:
            return holder
    return None


def orphan_spools(spool_dir: Path, *, workers: int) -> list[Path]:
    """Spools with segments that the coming run's processes will not open themselves.

    One process (``workers == 1``) spools into ``spool_dir`` and replays it at open: the worker spools
    are orphans. ``workers`` worker processes open ``worker-0`` .. ``worker-{workers-1}``: ``spool_dir``
    itself and higher-numbered worker spools are.
    """
    own = {spool_dir} if workers == 1 else {worker_spool_dir(spool_dir, k) for k in range(workers)}
    candidates = [spool_dir, *worker_spool_dirs(spool_dir)]
    return [d for d in candidates if d not in own and d.is_dir() and existing_segments(d)]


def replay_leftovers(settings: Settings, db: Database, directories: list[Path]) -> bool:
    """Store what each spool in ``directories`` holds (blocking; threads started here are stopped
    before it returns). True when everything was stored; what was not stays on disk for the next start.
    """
    done = True
    for directory in directories:
        sink = DurableTraceSink.from_settings(settings, db, spool_dir=directory)
        sink.open()
        recovered = sink.spool.segments.durable_records
        stored = sink.close()
        log.info("replayed the trace spool %s left by an earlier run (%d records)", directory, recovered)
        done = done and stored
    return done
