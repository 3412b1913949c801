"""The retention job: :func:`~lmdeck.tracing.retention.prune` on a schedule, in a thread of its own.

    job = RetentionJob(db, Retention(raw_days=30), interval_s=3600, registry=metrics.registry,
                       on_run=lambda pruned: audit.append("system:retention", "retention.run", "traces", ...))
    await job.start()        # prunes shortly after start, then every interval_s
    job.run_once()           # what each run does (blocking): Pruned, logged, counted and reported to on_run
    await job.stop()         # ends between two chunks of a run in progress

Each run reads the per team and per route policies stored through the API (table
``retention_policies``), so a policy applied takes effect at the next run in every process.

The gateway runs one as a service when ``tracing.retention.prune_interval_s`` is
set (the default: hourly). Each run deletes in short transactions of a few
thousand rows (see :mod:`lmdeck.tracing.retention`), off the event loop and off
the threads requests use, so the store writer and the API never wait long for
it. Rows deleted are counted on ``lmdeck_trace_rows_pruned_total`` by ``kind``
(``traces``, ``bodies``, ``minute_rollups``, ``rollups``, ``breakdowns``) and logged once
per run that deleted any; ``on_run`` gets every run's :class:`Pruned` (the gateway appends it,
with the counts per policy, to the audit log).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from lmdeck.db import Database
from lmdeck.tracing.retention import Pruned, Retention, prune
from lmdeck.tracing.retention_policies import RetentionPolicyStore

log = logging.getLogger(__name__)

#: What :attr:`Pruned` counts, the ``kind`` label of ``lmdeck_trace_rows_pruned_total``.
KINDS: tuple[str, ...] = ("traces", "bodies", "minute_rollups", "rollups", "breakdowns", "spans")


def run_report(pruned: Pruned) -> dict[str, Any]:
    """What one run did, as the audit log keeps it: the totals and, per policy, traces deleted and bodies cleared."""
    return {
        **{kind: getattr(pruned, kind) for kind in KINDS},
        "policies": [expired.to_dict() for expired in pruned.by_policy],
    }


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
        batch_size: int | None = None,
        on_run: Callable[[Pruned], object] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("a retention job needs interval_s > 0")
        self.db = db
        self.policy = policy
        self.interval_s = interval_s
        #: Seconds from start to the first run: a restart does not compete with the spool's replay at once.
        self.first_delay_s = first_delay_s
        self.clock = clock
        #: Rows per transaction (None: :data:`lmdeck.tracing.retention._CHUNK`).
        self.batch_size = batch_size
        self.on_run = on_run
        self.policies = RetentionPolicyStore(db)
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
        stored = self.policies.list()
        pruned = prune(self.db, self.policy, now=self.clock(), stop=self._stop, stored=stored, batch=self.batch_size)
        for kind in KINDS:
            count = getattr(pruned, kind)
            if count:
                self.pruned.labels(kind).inc(count)
        if any(getattr(pruned, kind) for kind in KINDS):
            log.info(
                "trace retention deleted %d traces, cleared %d bodies, deleted %d minute rollups, %d hour/day "
                "rollups and %d breakdowns",
                pruned.traces,
                pruned.bodies,
                pruned.minute_rollups,
                pruned.rollups,
                pruned.breakdowns,
            )
        self.runs += 1
        if self.on_run is not None:
            self.on_run(pruned)
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
