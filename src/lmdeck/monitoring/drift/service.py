"""Drift reports off the event loop: one report computed at a time, on the service's own thread.

    service = DriftService(DriftMonitor(db))        # a Service of the gateway (gateway.drift)
    report = await service.analyze(samples, options)   # DriftBusy when MAX_WAITING reports already wait
    service.monitor.drift_p_value("demo", "7d", "1d")  # blocking; for alert rules' own threads

Embedding prompts and running permutation tests take seconds of CPU, so reports run one at a time on
a thread of their own (never the event loop's default pool, which request handling uses), and at most
:data:`MAX_WAITING` more wait; past that a report is refused (the API answers 503 with ``retry-after``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from lmdeck.monitoring.drift.report import DriftMonitor, DriftOptions
from lmdeck.monitoring.drift.samples import DriftSamples
from lmdeck.protocol.drift import DriftReport

log = logging.getLogger(__name__)

#: Reports that may wait while one is computed.
MAX_WAITING = 2


class DriftBusy(Exception):
    """Too many drift reports are being computed; the message says to retry."""


class DriftService:
    """Computes drift reports on one worker thread, bounded (see the module docstring)."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdeck-drift")
            return self._executor

    async def analyze(self, samples: DriftSamples, options: DriftOptions) -> DriftReport:
        """:meth:`DriftMonitor.analyze` on the worker thread; :class:`DriftBusy` when too many wait."""
        with self._lock:
            if self._in_flight > MAX_WAITING:
                raise DriftBusy(
                    f"{self._in_flight} drift reports are being computed: retry in a minute, or ask for "
                    "fewer samples (max_samples)"
                )
            self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(self._pool(), self.monitor.analyze, samples, options)
        finally:
            with self._lock:
                self._in_flight -= 1
        log.info(
            "drift report for route %r: %s (p=%s) in %.1f s",
            report.route,
            report.verdict,
            report.p_value,
            report.seconds,
        )
        return report
