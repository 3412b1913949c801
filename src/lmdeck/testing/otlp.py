"""OTLP with the official protobuf classes: exports for tests of lmdeck's OTLP endpoint, and a receiver
for tests of what lmdeck exports.

body = export(span(ROOT, name="agent.run"), span(CHILD, parent=ROOT)).SerializeToString()
json_body = as_otlp_json(export(span(ROOT)))      # OTLP/JSON: hex ids, not protobuf's base64

with OtlpReceiver() as receiver:                  # an OTLP/HTTP collector on loopback (a test double)
    env = {"LMDECK_OTLP_ENDPOINT": receiver.url}  # lmdeck appends /v1/traces and /v1/metrics
    ...
    spans = receiver.wait_for_spans(lambda s: any(x.name == "chat demo" for x in s))
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
ROOT = bytes.fromhex("00f067aa0ba902b7")
CHILD = bytes.fromhex("b7ad6b7169203331")


def export(*spans: Span) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="support-agent")))
    resource.scope_spans[0].scope.name = "agent"
    request.resource_spans.append(resource)
    return request


def span(span_id: bytes, parent: bytes = b"", trace: bytes = TRACE, name: str = "agent.run") -> Span:
    out = Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_800_000_000_000_000_000,
        end_time_unix_nano=1_800_000_000_250_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="tool failed"),
    )
    nested = KeyValueList(values=[KeyValue(key="k", value=AnyValue(int_value=3))])
    out.attributes.extend(
        [
            KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="invoke_agent")),
            KeyValue(
                key="retrieval.documents", value=AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=0.5)]))
            ),
            KeyValue(key="nested", value=AnyValue(kvlist_value=nested)),
            KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\x01")),
            KeyValue(key="ok", value=AnyValue(bool_value=True)),
        ]
    )
    return out


def as_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP/JSON encoding: protobuf's JSON mapping, with trace and span ids in hex (not base64)."""
    data = json_format.MessageToDict(request)
    for resource in data["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for item in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()
    return orjson.dumps(data)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes_of(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` attributes as a plain dict (arrays as lists)."""
    return {kv.key: _value(kv.value) for kv in items}


@dataclass
class ReceivedSpan:
    """One span as decoded from an OTLP export: ids in hex, kind as OTLP's name (``SPAN_KIND_SERVER``)."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, Any]]
    events: list[str]
    resource: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, item: Span, resource: dict[str, Any]) -> ReceivedSpan:
        return cls(
            name=item.name,
            kind=Span.SpanKind.Name(item.kind),
            trace_id=item.trace_id.hex(),
            span_id=item.span_id.hex(),
            parent_span_id=item.parent_span_id.hex(),
            start_ns=item.start_time_unix_nano,
            end_ns=item.end_time_unix_nano,
            status=Status.StatusCode.Name(item.status.code),
            attributes=attributes_of(item.attributes),
            links=[
                {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), **attributes_of(link.attributes)}
                for link in item.links
            ],
            events=[event.name for event in item.events],
            resource=resource,
        )


@dataclass
class ReceivedPoint:
    """One histogram data point of an OTLP metrics export."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int
    sum: float
    bounds: list[float]


class OtlpReceiver:
    """A FAKE OpenTelemetry Collector: an OTLP/HTTP server on loopback that decodes what it is sent.

    ``POST /v1/traces`` and ``POST /v1/metrics`` take protobuf exports (gzip or not) and answer
    success; :meth:`spans` and :meth:`points` decode everything received so far. ``headers`` keeps
    each export's request headers.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                answer: bytes
                with receiver._lock:
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if self.path == "/v1/traces":
                        receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                        answer = ExportTraceServiceResponse().SerializeToString()
                    elif self.path == "/v1/metrics":
                        receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                        answer = ExportMetricsServiceResponse().SerializeToString()
                    else:
                        self.send_error(404)
                        return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def url(self) -> str:
        """The base URL (OpenTelemetry's ``OTEL_EXPORTER_OTLP_ENDPOINT``): signals go to ``/v1/<signal>``."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            exports = list(self.traces)
        out: list[ReceivedSpan] = []
        for request in exports:
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend(ReceivedSpan.decode(item, resource) for item in scope_spans.spans)
        return out

    def points(self, metric: str) -> list[ReceivedPoint]:
        """The histogram points of ``metric`` in every export so far (cumulative: later ones include earlier)."""
        with self._lock:
            exports = list(self.metrics)
        out: list[ReceivedPoint] = []
        for request in exports:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for item in scope_metrics.metrics:
                        if item.name != metric:
                            continue
                        for point in item.histogram.data_points:
                            out.append(
                                ReceivedPoint(
                                    metric=item.name,
                                    unit=item.unit,
                                    attributes=attributes_of(point.attributes),
                                    count=point.count,
                                    sum=point.sum,
                                    bounds=list(point.explicit_bounds),
                                )
                            )
        return out

    def wait_for_spans(self, ready: Callable[[list[ReceivedSpan]], bool], timeout: float = 60.0) -> list[ReceivedSpan]:
        """Every span received, once ``ready`` says they are enough (polled until ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise TimeoutError(f"the spans awaited did not arrive within {timeout}s; received: {names}")
            time.sleep(0.05)

    def wait_for_points(
        self, metric: str, ready: Callable[[list[ReceivedPoint]], bool], timeout: float = 60.0
    ) -> list[ReceivedPoint]:
        deadline = time.monotonic() + timeout
        while True:
            points = self.points(metric)
            if ready(points):
                return points
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {metric} points awaited did not arrive within {timeout}s")
            time.sleep(0.05)
