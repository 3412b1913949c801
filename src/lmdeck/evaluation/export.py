"""Quality as Prometheus series and OpenTelemetry events.

Every online score and every feedback value is observed into a histogram labelled
by route, prompt, prompt version and upstream model, so a dashboard can chart quality
per version next to latency and cost::

    lmdeck_eval_score_sum{route="demo",prompt="calc",prompt_version="2",model="demo",evaluator="json_valid"}
    lmdeck_feedback_value_count{route="demo",prompt="calc",prompt_version="2",model="demo",name="thumbs"}

Online scores are also sent as ``gen_ai.evaluation.result`` span events (OpenTelemetry
GenAI conventions), in a span that is a child of the judged request's span.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lmdeck.evaluation.base import Score
from lmdeck.protocol.traces import TraceRecord

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
VERSION_LABELS = ("route", "prompt", "prompt_version", "model")
#: The ``name`` label of feedback whose name is not one of ``evaluation.feedback_names``.
OTHER_FEEDBACK = "other"


def version_labels(record: TraceRecord) -> tuple[str, str, str, str]:
    return (
        record.route or "none",
        record.prompt_name or "none",
        str(record.prompt_version) if record.prompt_version is not None else "none",
        record.upstream_model or "none",
    )


class _QueueGauges(Collector):
    """Depth and drops of the background queues, read at scrape time."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], tuple[int, int]]] = {}

    def collect(self) -> list[Metric]:
        depth = GaugeMetricFamily("lmdeck_eval_queue_depth", "evaluation work waiting", labels=["queue"])
        dropped = CounterMetricFamily(
            "lmdeck_eval_queue_dropped", "evaluation work dropped because the queue was full", labels=["queue"]
        )
        for name, source in self.sources.items():
            d, x = source()
            depth.add_metric([name], d)
            dropped.add_metric([name], x)
        return [depth, dropped]


class QualityMetrics:
    """Evaluation's Prometheus series, registered on the gateway's registry.

    ``feedback_names`` are the feedback names (``evaluation.feedback_names``) the ``name`` label
    takes; feedback under any other name is counted as ``other``, since clients choose names.

    >>> metrics = QualityMetrics(CollectorRegistry(), feedback_names=("thumbs",))
    """

    def __init__(self, registry: CollectorRegistry, feedback_names: Collection[str] = ()) -> None:
        self.feedback_names = frozenset(feedback_names)
        self.score = Histogram(
            "lmdeck_eval_score",
            "online evaluation scores in [0, 1], by route and version",
            [*VERSION_LABELS, "evaluator"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.feedback = Histogram(
            "lmdeck_feedback_value",
            "feedback values reported for traces, by route and version",
            [*VERSION_LABELS, "name"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.sampled = Counter("lmdeck_eval_sampled", "traces sampled by online rules", ["rule"], registry=registry)
        self.errors = Counter(
            "lmdeck_eval_errors", "online evaluations that raised an error", ["evaluator"], registry=registry
        )
        self.exposures = Counter(
            "lmdeck_experiment_exposures",
            "requests assigned to an experiment variant",
            ["experiment", "variant"],
            registry=registry,
        )
        self._queues = _QueueGauges()
        registry.register(self._queues)

    def watch_queue(self, name: str, source: Callable[[], tuple[int, int]]) -> None:
        """Export ``source() -> (depth, dropped)`` as queue gauges."""
        self._queues.sources[name] = source

    def observe_score(self, record: TraceRecord, evaluator: str, score: Score) -> None:
        if score.value is not None:
            self.score.labels(*version_labels(record), evaluator).observe(score.value)

    def observe_feedback(self, labels: tuple[str, str, str, str], name: str, value: float | None) -> None:
        if value is not None:
            self.feedback.labels(*labels, name if name in self.feedback_names else OTHER_FEEDBACK).observe(value)


class EvaluationEvents:
    """``gen_ai.evaluation.result`` events for online scores, in spans parented by the judged request.

    Built with an OpenTelemetry ``SpanProcessor`` (``to_otlp`` for a collector)::

        events = EvaluationEvents.to_otlp("http://collector:4318/v1/traces")
        events.emit(record, "json_valid", Score(1.0, label="valid"))
    """

    def __init__(self, processor: Any) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        from lmdeck.version import __version__

        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "lmdeck", "service.version": __version__})
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("lmdeck.evaluation", __version__)

    @classmethod
    def to_otlp(cls, endpoint: str, headers: dict[str, str] | None = None) -> EvaluationEvents:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return cls(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers or None)))

    def emit(self, record: TraceRecord, evaluator: str, score: Score) -> None:
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        context = None
        if record.span_id:
            try:
                parent = SpanContext(
                    trace_id=int(record.trace_id, 16),
                    span_id=int(record.span_id, 16),
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
                context = set_span_in_context(NonRecordingSpan(parent))
            except ValueError:
                context = None
        attributes: dict[str, Any] = {
            "gen_ai.evaluation.name": evaluator,
            "lmdeck.trace_record_id": record.id,
            "lmdeck.route": record.route or "",
        }
        if score.value is not None:
            attributes["gen_ai.evaluation.score.value"] = score.value
        if score.label is not None:
            attributes["gen_ai.evaluation.score.label"] = score.label
        if score.explanation:
            attributes["gen_ai.evaluation.explanation"] = score.explanation[:1000]
        span = self.tracer.start_span(
            f"evaluate {evaluator}", context=context, attributes={"gen_ai.operation.name": "evaluate"}
        )
        span.add_event("gen_ai.evaluation.result", attributes=attributes)
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()
