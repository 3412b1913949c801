"""OTLP trace exports built with the official protobuf classes, for tests of lmdeck's OTLP endpoint.

body = export(span(ROOT, name="agent.run"), span(CHILD, parent=ROOT)).SerializeToString()
json_body = as_otlp_json(export(span(ROOT)))      # OTLP/JSON: hex ids, not protobuf's base64
"""

from __future__ import annotations

import base64

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
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
