"""OpenTelemetry spans of each request: one SERVER span, and a GenAI CLIENT span per upstream attempt.

The server-span middleware gathers a :class:`~lmdeck.tracing.request_spans.RequestSpans` while the
request runs; when the response is complete :meth:`OTelExporter.export_request` turns it into spans
with the request's real times:

* the SERVER span (HTTP semantic conventions: ``http.request.method``, ``url.path``, ``http.route``,
  ``http.response.status_code``...) with lmdeck's trace id and the span id lmdeck announced in its
  ``traceparent`` header;
* under it, one CLIENT span per call to a target (``chat gpt-4o``, with the GenAI conventions'
  ``gen_ai.*`` attributes, the upstream's ``server.address``/``server.port`` and its own
  ``http.response.status_code`` and ``error.type``), whose span id is the parent lmdeck passed
  upstream in ``traceparent``. A request answered without an upstream call (an unknown model, a
  cache hit) gets one INTERNAL GenAI span instead.

The caller's ``traceparent`` becomes a link (``lmdeck.link=caller``), not the parent: a caller
chooses its trace id freely, so a span joining it would let one caller write into another's trace
(OpenTelemetry's advice for a public entry point). Its sampled flag is honoured: not sampled, not
exported::

    exporter = OTelExporter.from_settings(settings)      # None without an OTLP endpoint
    exporter.export_request(spans, server)

Spans are handed to a batch processor, so nothing here waits on the network.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, http_attributes, server_attributes
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.genai_attributes import (
    OPERATIONS,
    body_of,
    content_attributes,
    genai_attributes,
    provider_name,
    request_attributes,
    response_attributes,
    span_name,
)
from lmdeck.tracing.request_spans import (
    CURRENT_REQUEST,
    RequestSpans,
    ResponseFacts,
    UpstreamAttempt,
    current_request,
    new_span_id,
)
from lmdeck.version import __version__

__all__ = ["OPERATIONS", "OTelExporter", "genai_attributes", "guardrail_events"]

_next_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("lmdeck_next_ids", default=None)


class _RecordIdGenerator(RandomIdGenerator):
    """Gives a span the ids lmdeck already chose (announced in ``traceparent``, or sent upstream)."""

    def generate_span_id(self) -> int:
        wanted = _next_ids.get()
        return wanted[1] if wanted else super().generate_span_id()

    def generate_trace_id(self) -> int:
        wanted = _next_ids.get()
        return wanted[0] if wanted else super().generate_trace_id()


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


def _caller_links(record: TraceRecord | None, client_trace_id: str | None, parent_span_id: str | None) -> list[Link]:
    trace_id = record.client_trace_id if record else client_trace_id
    span_id = record.parent_span_id if record else parent_span_id
    if not trace_id or not span_id:
        return []
    caller = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return [Link(caller, {"lmdeck.link": "caller"})]


class OTelExporter:
    """Turns each finished request into its OTel spans (see the module docstring)."""

    def __init__(self, processor: SpanProcessor, *, capture_content: bool = False) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "lmdeck", "service.version": __version__}),
            id_generator=_RecordIdGenerator(),
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("lmdeck", __version__, schema_url=Schemas.V1_44_0.value)
        self.capture_content = capture_content

    @classmethod
    def from_settings(cls, settings: Settings) -> OTelExporter | None:
        """An exporter to ``settings.otlp_traces_url`` (with ``otlp_headers``), or None when it is unset.

        Message content is exported only with ``tracing.capture_content`` and ``tracing.redact: none``.
        """
        url = settings.otlp_traces_url
        if url is None:
            return None
        capture = settings.tracing.capture_content and settings.tracing.redact == "none"
        return cls.to_otlp(url, settings.otlp_headers, capture_content=capture)

    @classmethod
    def to_otlp(
        cls, endpoint: str, headers: Mapping[str, str] | None = None, *, capture_content: bool = False
    ) -> OTelExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers) if headers else None)
        return cls(BatchSpanProcessor(exporter), capture_content=capture_content)

    @classmethod
    def to_exporter(cls, exporter: SpanExporter, *, capture_content: bool = False) -> OTelExporter:
        return cls(BatchSpanProcessor(exporter), capture_content=capture_content)

    # -- the record step's observer ----------------------------------------------------------------

    def observe(self, record: TraceRecord) -> None:
        """Attach ``record`` to the request being served; outside an HTTP request, export it at once."""
        spans = current_request()
        if spans is not None:
            spans.record = record
            return
        late = CURRENT_REQUEST.get()
        if late is not None:
            # The response ended before its record (a client that went away mid-stream): the GenAI span
            # joins the SERVER span already exported, or nothing when that was not exported.
            if late.exported:
                late.record = record
                parent = SpanContext(int(late.trace_id, 16), int(late.span_id, 16), is_remote=False)
                start_ns = int(record.created_at * 1e9)
                end_ns = start_ns + int(record.latency_ms * 1e6)
                self._genai_span(late, None, set_span_in_context(NonRecordingSpan(parent)), start_ns, end_ns)
            return
        # A pipeline run without the server-span middleware (an in-process caller): the GenAI span alone.
        spans = RequestSpans(record.trace_id, record.span_id or new_span_id(), record=record)
        start_ns = int(record.created_at * 1e9)
        end_ns = start_ns + int(record.latency_ms * 1e6)
        self._genai_span(spans, None, None, start_ns, end_ns, root=True)

    # -- whole requests ------------------------------------------------------------------------------

    def export_request(
        self,
        spans: RequestSpans,
        server: dict[str, Any],
        status_code: int,
        end_ns: int,
        name: str,
        *,
        client_trace_id: str | None = None,
        parent_span_id: str | None = None,
    ) -> None:
        """Export the SERVER span (``server``: its HTTP attributes) and the GenAI spans under it."""
        record = spans.record
        attributes = dict(server)
        attributes[http_attributes.HTTP_RESPONSE_STATUS_CODE] = status_code
        if status_code >= 500:
            attributes[error_attributes.ERROR_TYPE] = str(status_code)
        attributes["lmdeck.request_id"] = record.request_id if record else server.get("lmdeck.request_id", "")
        server_span = self._start(
            name,
            SpanKind.SERVER,
            (spans.trace_id, spans.span_id),
            set_span_in_context(INVALID_SPAN),  # a root of lmdeck's own trace: no ambient parent
            attributes,
            spans.started_ns,
            _caller_links(record, client_trace_id, parent_span_id),
        )
        parent = set_span_in_context(server_span)
        if record is not None:
            if spans.attempts:
                for attempt in spans.attempts:
                    self._genai_span(spans, attempt, parent, attempt.started_ns, attempt.ended_ns or end_ns)
            else:
                start = int(record.created_at * 1e9)
                self._genai_span(spans, None, parent, start, start + int(record.latency_ms * 1e6))
            for event_name, event_attributes in guardrail_events(record):
                server_span.add_event(event_name, event_attributes, timestamp=end_ns)
        if status_code >= 500:
            server_span.set_status(Status(StatusCode.ERROR, record.error or "" if record else ""))
        server_span.end(end_time=end_ns)

    def _start(
        self,
        name: str,
        kind: SpanKind,
        ids: tuple[str, str],
        context: Context,
        attributes: dict[str, Any],
        start_ns: int,
        links: list[Link] | None = None,
    ) -> Span:
        token = _next_ids.set((int(ids[0], 16), int(ids[1], 16)))
        try:
            return self.tracer.start_span(
                name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_ns
            )
        finally:
            _next_ids.reset(token)

    def _genai_span(
        self,
        spans: RequestSpans,
        attempt: UpstreamAttempt | None,
        parent: Context | None,
        start_ns: int,
        end_ns: int,
        *,
        root: bool = False,
    ) -> None:
        record = spans.record
        assert record is not None
        body = body_of(spans.request, record)
        attrs = request_attributes(record, body)
        answered = attempt is None or attempt.error_type is None
        # Only the attempt that produced the answer carries what the answer said.
        if answered and record.status_code < 400:
            facts = spans.response
            if facts is None and isinstance(record.response_body, dict):
                facts = ResponseFacts()
                facts.read(record.response_body)
            attrs |= response_attributes(record, facts)
            if self.capture_content:
                attrs |= content_attributes(record, body, facts)
        if attempt is not None:
            attrs[gen_ai.GEN_AI_PROVIDER_NAME] = provider_name(attempt.provider)
            attrs["lmdeck.target"] = attempt.target
            if attempt.server_address:
                attrs[server_attributes.SERVER_ADDRESS] = attempt.server_address
            if attempt.server_port:
                attrs[server_attributes.SERVER_PORT] = attempt.server_port
            if attempt.status_code is not None:
                attrs[http_attributes.HTTP_RESPONSE_STATUS_CODE] = attempt.status_code
            if attempt.error_type:
                attrs[error_attributes.ERROR_TYPE] = attempt.error_type
            ids = (spans.trace_id, attempt.span_id)
            kind = SpanKind.CLIENT
        else:
            if record.error_type:
                attrs[error_attributes.ERROR_TYPE] = record.error_type
            ids = (spans.trace_id, spans.span_id) if root else (spans.trace_id, new_span_id())
            kind = SpanKind.CLIENT if root else SpanKind.INTERNAL
        context = parent if parent is not None else set_span_in_context(INVALID_SPAN)
        links = _caller_links(record, None, None) if root else None
        span = self._start(span_name(record, body), kind, ids, context, attrs, start_ns, links)
        if root:
            for event_name, event_attributes in guardrail_events(record):
                span.add_event(event_name, event_attributes, timestamp=end_ns)
        if (attempt is not None and attempt.error_type) or (attempt is None and record.status_code >= 400):
            span.set_status(Status(StatusCode.ERROR, record.error or ""))
        span.end(end_time=max(end_ns, start_ns))

    def shutdown(self) -> None:
        self.provider.shutdown()
