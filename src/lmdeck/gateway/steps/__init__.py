"""Pipeline steps owned by the gateway itself (policy steps live in :mod:`lmdeck.policy`).

:func:`core_steps` declares them for :func:`lmdeck.pipeline.order.build_pipeline`; each
feature package declares its own the same way.
"""

from __future__ import annotations

from lmdeck.gateway.routing.usage import StreamUsageFilter
from lmdeck.gateway.steps.record import RecordStep, TraceObserver, TraceSink
from lmdeck.pipeline.order import StepDeclaration


def core_steps(sink: TraceSink, observers: list[TraceObserver], redact: str = "none") -> list[StepDeclaration]:
    """The gateway's own steps: ``stream_usage`` (phase ``edge``) and ``record`` (phase ``trace``).

    ``observers`` is kept by reference: observers added later still see every trace.
    """
    return [
        StepDeclaration(StreamUsageFilter(), "edge"),
        StepDeclaration(RecordStep(sink, observers, redact), "trace"),
    ]
