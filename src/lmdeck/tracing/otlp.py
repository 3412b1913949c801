"""OTLP/HTTP trace exports decoded into :class:`~lmdeck.tracing.spans.SpanRow` s, with the official schema.

    export = decode_export(body, "application/x-protobuf")    # or "application/json"
    decoded = spans_of(export, team_id="team-a", key_id="k1", received_at=time.time())
    decoded.spans, decoded.rejected, decoded.reason           # reason: why spans were rejected, or None

Both encodings of the OTLP specification are read with the ``opentelemetry-proto`` package:
binary protobuf with ``ParseFromString``, JSON with protobuf's JSON mapping, after turning
the trace and span ids, which OTLP/JSON writes in hex rather than protobuf's base64, into
bytes. A body either encoding cannot read raises :class:`OTLPDecodeError` (the endpoint
answers 400). A span that decodes but cannot be stored (an id of the wrong length or all
zeros) is rejected on its own and counted, as OTLP's partial success reports it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from lmdeck.protocol.limits import InputError, check_json
from lmdeck.tracing.spans import SpanRow

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: The encodings OTLP/HTTP defines.
CONTENT_TYPES = (PROTOBUF, JSON)

KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
STATUSES = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}
_NAME_CHARS = 512
_LABEL_CHARS = 256


class OTLPDecodeError(ValueError):
    """The body is not an OTLP trace export in the encoding it declares; the message says what is wrong."""


@dataclass
class DecodedSpans:
    """The spans of one export that can be stored, and how many were rejected (with the first reason)."""

    spans: list[SpanRow] = field(default_factory=list)
    rejected: int = 0
    reason: str | None = None

    def reject(self, why: str) -> None:
        self.rejected += 1
        self.reason = self.reason or why


def _hex_to_base64(value: Any, where: str) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise OTLPDecodeError(f"{where} is not hexadecimal: OTLP/JSON writes trace and span ids in hex") from None


def _ids_to_base64(item: dict[str, Any], where: str, names: tuple[str, ...]) -> None:
    for name in names:
        for key in (name, _snake(name)):
            if key in item:
                item[key] = _hex_to_base64(item[key], f"{where}.{key}")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _items(parent: dict[str, Any], name: str) -> list[Any]:
    value = parent.get(name, parent.get(_snake(name)))
    return value if isinstance(value, list) else []


def _json_ids(data: dict[str, Any]) -> None:
    """Rewrite the hex ids of an OTLP/JSON export to base64, where protobuf's JSON mapping reads bytes."""
    for r, resource in enumerate(_items(data, "resourceSpans")):
        if not isinstance(resource, dict):
            continue
        for s, scope in enumerate(_items(resource, "scopeSpans")):
            if not isinstance(scope, dict):
                continue
            for n, span in enumerate(_items(scope, "spans")):
                if not isinstance(span, dict):
                    continue
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _ids_to_base64(span, where, ("traceId", "spanId", "parentSpanId"))
                for k, link in enumerate(_items(span, "links")):
                    if isinstance(link, dict):
                        _ids_to_base64(link, f"{where}.links[{k}]", ("traceId", "spanId"))


def decode_export(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The export ``body`` holds, in ``content_type`` (one of :data:`CONTENT_TYPES`).

    Raises :class:`OTLPDecodeError` naming what is wrong; unknown JSON fields are ignored, as OTLP asks.
    """
    export = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            export.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise OTLPDecodeError(f"the body is not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
        return export
    if content_type != JSON:
        raise OTLPDecodeError(f"unsupported content type {content_type!r}: send {PROTOBUF} or {JSON}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OTLPDecodeError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OTLPDecodeError("the body must be a JSON object (an OTLP ExportTraceServiceRequest)")
    try:
        check_json(data)
    except InputError as exc:
        raise OTLPDecodeError(str(exc)) from None
    _json_ids(data)
    try:
        json_format.ParseDict(data, export, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise OTLPDecodeError(f"the body is not an OTLP JSON ExportTraceServiceRequest: {exc}") from None
    return export


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a JSON value (bytes as base64 text)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` s as a dict (the last of a repeated key wins)."""
    out: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        out[pair.key] = any_value(pair.value)
    return out


def _id(raw: bytes, size: int) -> str | None:
    """``raw`` as lowercase hex when it is ``size`` bytes and not all zeros."""
    if len(raw) != size or not any(raw):
        return None
    return binascii.hexlify(raw).decode()


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def spans_of(
    export: ExportTraceServiceRequest, *, team_id: str | None, key_id: str | None, received_at: float
) -> DecodedSpans:
    """The export's spans as rows of ``team_id`` (the sending key's team); spans with bad ids are rejected."""
    decoded = DecodedSpans()
    for resource_spans in export.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = _text(resource.get("service.name"), _LABEL_CHARS)
        for scope_spans in resource_spans.scope_spans:
            scope = _text(scope_spans.scope.name, _LABEL_CHARS)
            for span in scope_spans.spans:
                trace_id = _id(span.trace_id, 16)
                span_id = _id(span.span_id, 8)
                parent = _id(span.parent_span_id, 8) if span.parent_span_id else None
                if trace_id is None or span_id is None:
                    decoded.reject("a span's trace_id must be 16 bytes and its span_id 8 bytes, not all zeros")
                    continue
                if span.parent_span_id and parent is None:
                    decoded.reject("a span's parent_span_id must be empty or 8 bytes, not all zeros")
                    continue
                end_ns = max(span.end_time_unix_nano, span.start_time_unix_nano)
                decoded.spans.append(
                    SpanRow(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=parent,
                        name=span.name[:_NAME_CHARS],
                        kind=KINDS.get(span.kind, "unspecified"),
                        start_ns=min(span.start_time_unix_nano, (1 << 63) - 1),
                        end_ns=min(end_ns, (1 << 63) - 1),
                        status=STATUSES.get(span.status.code, "unset"),
                        status_message=span.status.message or None,
                        service_name=service,
                        scope_name=scope,
                        attributes=attributes(span.attributes),
                        events=[
                            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        links=[
                            {
                                "trace_id": binascii.hexlify(link.trace_id).decode(),
                                "span_id": binascii.hexlify(link.span_id).decode(),
                                "attributes": attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        resource=resource,
                        team_id=team_id,
                        key_id=key_id,
                        received_at=received_at,
                    )
                )
    return decoded
