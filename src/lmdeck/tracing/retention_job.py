"""The retention job: :func:`~lmdeck.tracing.retention.prune` on a schedule, in a thread of its own.

    job = RetentionJob(db, Retention(raw_days=30), interval_s=3600, registry=metrics.registry)
    await job.start()        # prunes shortly after start, then every interval_s
    job.run_once()           # what each run does (blocking): Pruned, logged and counted
    await job.stop()         # ends between two chunks of a run in progress

The gateway runs one as a service when ``tracing.retention.prune_interval_s`` is
set (the default: hourly). Each run deletes in short transactions of a few
thousand rows (see :mod:`lmdeck.tracing.retention`), off the event loop and off
the threads requests use, so the store writer and the API never wait long for
it. Rows deleted are counted on ``lmdeck_trace_rows_pruned_total`` by ``kind``
(``traces``, ``minute_rollups``, ``rollups``, ``breakdowns``) and logged once
per run that deleted any.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from lmdeck.db import Database
from lmdeck.tracing.retention import Pruned, Retention, prune

log = logging.getLogger(__name__)

#: What :attr:`Pruned` counts, the ``kind`` label of ``lmdeck_trace_rows_pruned_total``.
KINDS: tuple[str, ...] = ("traces", "minute_rollups", "rollups", "breakdowns")


class RetentionJob:
    """Prunes trace data past ``policy`` every ``interval_s`` seconds (see the module docs)."""

    def __init__(
        self,
        db: Database,
        policy: Retention,
        *,
        interval_s: float = 3600.0,
        first_delay_s: float = 60.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("a retention job needs interval_s > 0")
        self.db = db
        self.policy = policy
        self.interval_s = interval_s
        #: Seconds from start to the first run: a restart does not compete with the spool's replay at once.
        self.first_delay_s = first_delay_s
        self.clock = clock
        self.pruned = Counter(
            "lmdeck_trace_rows_pruned",
            "rows deleted by trace retention (tracing.retention), by kind",
            ["kind"],
            registry=registry,
        )
        #: Completed runs (whether they deleted anything).
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Pruned:
        """One prune at the clock's now (blocking): counted, and logged when it deleted rows."""
        pruned = prune(self.db, self.policy, now=self.clock(), stop=self._stop)
        for kind in KINDS:
            count = getattr(pruned, kind)
            if count:
                self.pruned.labels(kind).inc(count)
        if any(getattr(pruned, kind) for kind in KINDS):
            log.info(
                "trace retention deleted %d traces, %d minute rollups, %d hour/day rollups and %d breakdowns",
                pruned.traces,
                pruned.minute_rollups,
                pruned.rollups,
                pruned.breakdowns,
            )
        self.runs += 1
        return pruned

    def _run(self) -> None:
        wait = self.first_delay_s
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception:
                log.exception("trace retention failed; trying again in %gs", self.interval_s)
            wait = self.interval_s

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lmdeck-trace-retention", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        await asyncio.to_thread(thread.join, 30.0)
