"""Requests refused before routing, counted and recorded like the requests lmdeck serves.

    refusals = RefusalRecorder(sink, metrics, per_minute=20)
    observers.append(refusals)                     # learns which requests the record step wrote
    refusals.open(request_id)                      # the middleware, when a /v1/ request arrives
    if not refusals.close(request_id):             # refused and no step recorded it
        refusals.refused(record, client_address)   # counted always; written to the spool when sampled

A request the pipeline's record step saw (a 429 of the rate limiter, a 403 of a prompt's model
rule) already has its trace and its ``lmdeck_requests_total`` sample; the others (a bad key, a
body too large, a body that is not JSON, a key refused the model by the authenticate step) get
a trace record here, without bodies, and a sample of ``lmdeck_requests_refused_total``.

A flood of bad keys cannot grow the store: a record that names no key (a 401, a 413 before the
key was read) is written for at most ``per_minute`` refusals per client address and minute, and
for at most ``max_addresses`` addresses a minute; the rest are only counted in the metric.
Records are handed to the spool (``sink.submit``), never awaited on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class RefusalSink(Protocol):
    """Where refusal records go: the gateway's trace sink (enqueues at once, durable later)."""

    def submit(self, record: TraceRecord) -> asyncio.Future[None]: ...


class RefusalRecorder:
    """Counts every refusal; writes a sampled share of the anonymous ones (module docs)."""

    def __init__(
        self,
        sink: RefusalSink,
        metrics: GatewayMetrics,
        per_minute: int = 20,
        max_addresses: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self.clock = clock
        #: Refusals that were only counted, not recorded (anonymous ones past the sampling limit).
        self.unrecorded = 0
        self._open: dict[str, bool] = {}
        self._minute = -1
        self._by_address: dict[str, int] = {}

    def open(self, request_id: str) -> None:
        """A request began; :meth:`close` says whether the record step wrote its trace."""
        self._open[request_id] = False

    def close(self, request_id: str) -> bool:
        """Whether a trace of ``request_id`` was observed since :meth:`open`."""
        return self._open.pop(request_id, False)

    def observe(self, record: TraceRecord) -> None:
        """A TraceObserver: the record step wrote ``record``."""
        if record.request_id in self._open:
            self._open[record.request_id] = True

    def _sampled(self, address: str) -> bool:
        minute = int(self.clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._by_address.clear()
        seen = self._by_address.get(address)
        if seen is None:
            if len(self._by_address) >= self.max_addresses:
                return False
            seen = 0
        if seen >= self.per_minute:
            return False
        self._by_address[address] = seen + 1
        return True

    def refused(self, record: TraceRecord, client_address: str) -> bool:
        """Count ``record``'s refusal, and hand it to the spool when sampled; True when handed on."""
        self.metrics.refused(record.error_type or "refused", record.status_code)
        if record.key_id is None and not self._sampled(client_address):
            self.unrecorded += 1
            return False
        self.sink.submit(record).add_done_callback(_log_failure)
        return True


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a refusal's trace record was not stored", exc_info=future.exception())
