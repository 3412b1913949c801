"""OpenTelemetry spans for finished traces, with the GenAI semantic conventions (``gen_ai.*``).

A span is built from the trace record after the request ends, with the
request's real start and end times, lmdeck's own trace id and the span id
lmdeck returned in its ``traceparent`` header. The caller's ``traceparent``
becomes a link (``lmdeck.link=caller``), not the parent: a caller chooses its
trace id freely, so a span joining it would let one caller write into another's
trace. This is OpenTelemetry's advice for a public entry point::

    exporter = OTelExporter.to_otlp("http://collector:4318/v1/traces")
    exporter.observe(record)

Spans are handed to a batch processor, so nothing here waits on the network.
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from lmdeck.protocol.traces import TraceRecord
from lmdeck.version import __version__

OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}

_next_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("lmdeck_next_ids", default=None)


class _RecordIdGenerator(RandomIdGenerator):
    """Gives the span the ids the gateway already announced in its ``traceparent`` header."""

    def generate_span_id(self) -> int:
        wanted = _next_ids.get()
        return wanted[1] if wanted else super().generate_span_id()

    def generate_trace_id(self) -> int:
        wanted = _next_ids.get()
        return wanted[0] if wanted else super().generate_trace_id()


def genai_attributes(record: TraceRecord) -> dict[str, Any]:
    body = record.request_body if isinstance(record.request_body, dict) else {}
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(record.kind, record.kind),
        "gen_ai.provider.name": record.provider or "unknown",
        "gen_ai.request.model": record.route or "",
        "gen_ai.response.model": record.upstream_model or "",
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "lmdeck.request_id": record.request_id,
        "lmdeck.trace_id": record.trace_id,
        "lmdeck.trace_record_id": record.id,
        "lmdeck.route": record.route or "",
        "lmdeck.target": record.target or "",
        "lmdeck.cost_usd": record.cost_usd,
        "lmdeck.retries": record.retries,
        "lmdeck.cache_hit": record.cache_hit,
        "http.response.status_code": record.status_code,
    }
    for key, attr in (
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("seed", "gen_ai.request.seed"),
    ):
        if body.get(key) is not None:
            attrs[attr] = body[key]
    if record.ttft_ms is not None:
        attrs["lmdeck.time_to_first_token_ms"] = record.ttft_ms
    if record.prompt_name:
        attrs["lmdeck.prompt.name"] = record.prompt_name
        attrs["lmdeck.prompt.version"] = record.prompt_version or 0
    if record.session_id:
        attrs["gen_ai.conversation.id"] = record.session_id
        attrs["session.id"] = record.session_id
    if record.client_request_id:
        attrs["lmdeck.client_request_id"] = record.client_request_id
    if record.client_trace_id:
        attrs["lmdeck.client_trace_id"] = record.client_trace_id
    if record.key_id:
        attrs["lmdeck.key_id"] = record.key_id
    if record.team_id:
        attrs["lmdeck.team_id"] = record.team_id
    if record.error_type:
        attrs["error.type"] = record.error_type
    release = record.metadata.get("release")
    if release:  # stamped by the release step (lmdeck.delivery.step)
        attrs["lmdeck.release.id"] = str(release)
        attrs["lmdeck.release.variant"] = str(record.metadata.get("variant", ""))
        attrs["lmdeck.release.step"] = int(record.metadata.get("release_step", -1))
    return attrs


def guardrail_events(record: TraceRecord) -> list[tuple[str, dict[str, Any]]]:
    """The span events of a trace's guardrail verdicts (``lmdeck.guardrail``) and data-policy decision.

    The verdicts are those the guardrail steps keep in ``metadata["guardrails"]`` (positions
    and entity types only, never the text found); passes are left out.
    """
    events: list[tuple[str, dict[str, Any]]] = []
    for entry in record.metadata.get("guardrails") or []:
        if not isinstance(entry, dict) or entry.get("action") == "pass":
            continue
        attributes: dict[str, Any] = {
            "lmdeck.guardrail.name": str(entry.get("guardrail", "")),
            "lmdeck.guardrail.stage": str(entry.get("stage", "")),
            "lmdeck.guardrail.action": str(entry.get("action", "")),
            "lmdeck.guardrail.finding": str(entry.get("finding") or ""),
            "lmdeck.guardrail.score": float(entry.get("score") or 0.0),
            "lmdeck.guardrail.latency_ms": float(entry.get("latency_ms") or 0.0),
        }
        entities = sorted({str(s.get("entity")) for s in entry.get("spans") or [] if isinstance(s, dict)})
        if entities:
            attributes["lmdeck.guardrail.entities"] = entities
        events.append(("lmdeck.guardrail", attributes))
    decision = record.metadata.get("data_policy")
    if isinstance(decision, dict):
        events.append(
            (
                "lmdeck.data_policy",
                {
                    "lmdeck.data_policy.action": str(decision.get("action", "")),
                    "lmdeck.data_policy.restricted": [str(r) for r in decision.get("restricted") or []],
                    "lmdeck.data_policy.reason": str(decision.get("reason", "")),
                },
            )
        )
    return events


class OTelExporter:
    """Turns each finished trace record into one OTel span."""

    def __init__(self, processor: SpanProcessor) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "lmdeck", "service.version": __version__}),
            id_generator=_RecordIdGenerator(),
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("lmdeck", __version__)

    @classmethod
    def to_otlp(cls, endpoint: str) -> OTelExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))

    @classmethod
    def to_exporter(cls, exporter: SpanExporter) -> OTelExporter:
        return cls(BatchSpanProcessor(exporter))

    def observe(self, record: TraceRecord) -> None:
        links = []
        if record.client_trace_id and record.parent_span_id:
            caller = SpanContext(
                trace_id=int(record.client_trace_id, 16),
                span_id=int(record.parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            links.append(Link(caller, {"lmdeck.link": "caller"}))
        # A root span of lmdeck's own trace: no ambient context may become its parent.
        context = set_span_in_context(INVALID_SPAN)
        start_ns = int(record.created_at * 1e9)
        end_ns = start_ns + int(record.latency_ms * 1e6)
        name = f"{OPERATIONS.get(record.kind, record.kind)} {record.route or ''}".strip()
        ids = (int(record.trace_id, 16), int(record.span_id, 16)) if record.span_id else None
        token = _next_ids.set(ids)
        try:
            span = self.tracer.start_span(
                name,
                context=context,
                kind=SpanKind.CLIENT,
                attributes=genai_attributes(record),
                links=links,
                start_time=start_ns,
            )
        finally:
            _next_ids.reset(token)
        for event_name, attributes in guardrail_events(record):
            span.add_event(event_name, attributes, timestamp=end_ns)
        if record.status_code >= 400:
            span.set_status(Status(StatusCode.ERROR, record.error or ""))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()
