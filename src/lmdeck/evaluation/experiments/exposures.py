"""Recording which variant served each request: a trace observer writing in the background."""

from __future__ import annotations

import anyio

from lmdeck.evaluation.background import BackgroundQueue
from lmdeck.evaluation.experiments.store import ExperimentStore, Exposure
from lmdeck.evaluation.export import QualityMetrics
from lmdeck.protocol.traces import TraceRecord


class ExposureRecorder:
    """Queues an exposure for every trace stamped with an experiment; never blocks the request."""

    def __init__(self, store: ExperimentStore, metrics: QualityMetrics | None = None, maxsize: int = 10000) -> None:
        self.store = store
        self.metrics = metrics
        self.queue: BackgroundQueue[Exposure] = BackgroundQueue(
            "experiment-exposures", self._write, maxsize=maxsize, batch_size=500
        )
        if metrics is not None:
            metrics.watch_queue("experiment-exposures", lambda: (self.queue.depth, self.queue.dropped))

    def observe(self, record: TraceRecord) -> None:
        experiment = record.metadata.get("experiment") if record.metadata else None
        if not experiment:
            return
        variant = str(record.metadata.get("variant", ""))
        self.queue.offer(
            Exposure(
                trace_id=record.id,
                experiment=str(experiment),
                variant=variant,
                subject=record.metadata.get("experiment_subject"),
                status_code=record.status_code,
                latency_ms=record.latency_ms,
                cost=record.cost_usd,
                created_at=record.created_at,
            )
        )
        if self.metrics is not None:
            self.metrics.exposures.labels(str(experiment), variant).inc()

    async def _write(self, batch: list[Exposure]) -> None:
        await anyio.to_thread.run_sync(self.store.add_exposures, batch)

    async def start(self) -> None:
        await self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
