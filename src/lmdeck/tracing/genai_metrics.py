"""The GenAI client metrics of the OpenTelemetry conventions, exported over OTLP (``/v1/metrics``).

Two histograms, recorded for every finished inference request (a trace observer, like the
Prometheus metrics):

* ``gen_ai.client.token.usage`` (``{token}``), once per token type (``gen_ai.token.type``:
  ``input``, ``output``) that the answer reported: an unknown count is not recorded;
* ``gen_ai.client.operation.duration`` (``s``), with ``error.type`` when the request failed.

Both carry ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, and when
an answer came ``gen_ai.response.model``; ``server.address``/``server.port`` name the upstream of the
last attempt. The bucket boundaries are the conventions' advice::

    metrics = GenAIMetrics.from_settings(settings)   # None without an OTLP endpoint
    metrics.observe(record)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes

from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.genai_attributes import operation_name, provider_name, request_model
from lmdeck.tracing.request_spans import current_request
from lmdeck.version import __version__

#: The conventions' advised buckets: tokens in powers of 4, durations in seconds doubling from 10 ms.
TOKEN_BUCKETS = [4.0**i for i in range(14)]
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]


class GenAIMetrics:
    """Records the GenAI client histograms for each trace; a reader exports them (OTLP in the gateway)."""

    def __init__(self, reader: MetricReader) -> None:
        self.provider = MeterProvider(
            metric_readers=[reader],
            resource=Resource.create({"service.name": "lmdeck", "service.version": __version__}),
        )
        meter = self.provider.get_meter("lmdeck", __version__)
        self.token_usage = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> GenAIMetrics | None:
        url = settings.otlp_metrics_url
        return cls.to_otlp(url, settings.otlp_headers) if url else None

    @classmethod
    def to_otlp(cls, endpoint: str, headers: Mapping[str, str] | None = None) -> GenAIMetrics:
        """Export every ``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default) to ``endpoint``."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint, headers=dict(headers) if headers else None)
        return cls(PeriodicExportingMetricReader(exporter))

    def observe(self, record: TraceRecord) -> None:
        body = record.request_body if isinstance(record.request_body, dict) else {}
        spans = current_request()
        if spans is not None and spans.request is not None and hasattr(spans.request, "model"):
            body = {"model": spans.request.model}
        attrs: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: operation_name(record),
            gen_ai.GEN_AI_PROVIDER_NAME: provider_name(record.provider),
            gen_ai.GEN_AI_REQUEST_MODEL: request_model(record, body),
        }
        if spans is not None and spans.response is not None and spans.response.model and record.status_code < 400:
            attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = spans.response.model
        if spans is not None and spans.attempts:
            last = spans.attempts[-1]
            if last.server_address:
                attrs[server_attributes.SERVER_ADDRESS] = last.server_address
            if last.server_port:
                attrs[server_attributes.SERVER_PORT] = last.server_port
        for kind, count in (("input", record.input_tokens), ("output", record.output_tokens)):
            if count > 0 and not (kind == "output" and record.kind == "embeddings"):
                self.token_usage.record(count, {**attrs, gen_ai.GEN_AI_TOKEN_TYPE: kind})
        if record.status_code >= 400:
            attrs[error_attributes.ERROR_TYPE] = record.error_type or str(record.status_code)
        self.duration.record(record.latency_ms / 1000.0, attrs)

    def shutdown(self) -> None:
        self.provider.shutdown()
