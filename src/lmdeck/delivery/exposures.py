"""Recording which variant of a release served each request: a trace observer writing in the background.

Every trace stamped by the ``release`` step becomes a :class:`~lmdeck.delivery.store.ReleaseExposure`
(variant, step, status, latency, time to first token, cost, whether a guardrail blocked it), queued
without waiting (full queue: dropped and counted) and written in batches off the event loop; the
analysis reads them. The Prometheus series per release and variant are counted here too.
"""

from __future__ import annotations

import anyio

from lmdeck.delivery.metrics import ReleaseMetrics
from lmdeck.delivery.store import ReleaseExposure, ReleaseStore
from lmdeck.evaluation.background import BackgroundQueue
from lmdeck.protocol.traces import TraceRecord


def blocked(record: TraceRecord) -> bool:
    """Did a guardrail block the request or its answer (``metadata["guardrails"]`` verdicts)?"""
    entries = record.metadata.get("guardrails") or []
    return any(isinstance(e, dict) and e.get("action") == "block" for e in entries)


class ReleaseExposures:
    """Queues an exposure for every trace a release served; never blocks the request."""

    def __init__(self, store: ReleaseStore, metrics: ReleaseMetrics | None = None, maxsize: int = 10000) -> None:
        self.store = store
        self.metrics = metrics
        self.queue: BackgroundQueue[ReleaseExposure] = BackgroundQueue(
            "release-exposures", self._write, maxsize=maxsize, batch_size=500
        )

    def observe(self, record: TraceRecord) -> None:
        release = record.metadata.get("release") if record.metadata else None
        if not release:
            return
        exposure = ReleaseExposure(
            trace_id=record.id,
            release=str(release),
            variant=str(record.metadata.get("variant", "")),
            step=int(record.metadata.get("release_step", -1)),
            status_code=record.status_code,
            latency_ms=record.latency_ms,
            ttft_ms=record.ttft_ms,
            cost=record.cost_usd,
            blocked=blocked(record),
            created_at=record.created_at,
        )
        self.queue.offer(exposure)
        if self.metrics is not None:
            self.metrics.observe(exposure)

    async def flush(self) -> None:
        """Write what is queued now (the analysis reads what was served up to its tick)."""
        with anyio.move_on_after(self.queue.drain_timeout):
            await self.queue.join()

    async def _write(self, batch: list[ReleaseExposure]) -> None:
        await anyio.to_thread.run_sync(self.store.add_exposures, batch)

    async def start(self) -> None:
        await self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
