"""``POST /v1/traces``: the OTLP/HTTP trace endpoint, for spans from applications (retrieval, tools, agents).

    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://lmdeck:4000/v1/traces
    OTEL_EXPORTER_OTLP_TRACES_HEADERS="authorization=Bearer sk-lmdeck-..."

Any API key may send spans (the ``inference`` role or above); they are stored under the key's
team and shown with lmdeck's own calls of the same trace (``GET /api/traces/{trace_id}/tree``).
The body is ``application/x-protobuf`` or ``application/json`` (OTLP's two encodings), optionally
gzip-encoded, at most ``tracing.otlp_max_body_bytes`` once decoded. The route decodes it off the
event loop and hands the spans to the span writer's queue: nothing touches the database here.

Answers follow OTLP/HTTP: 200 with an ``ExportTraceServiceResponse`` in the request's encoding
(its ``partial_success`` counts spans rejected for bad ids); 400 for a body that is not an export,
413 for one too large, 415 for another content type or encoding, 503 with ``retry-after`` when
the queue is full (exporters retry it). A protobuf request's failure carries a ``google.rpc.Status``
as OTLP asks; any other carries lmdeck's OpenAI-shaped error.
"""

from __future__ import annotations

import time
import zlib

from fastapi import APIRouter, Depends, Request
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.tracing.otlp import CONTENT_TYPES, PROTOBUF, DecodedSpans, OTLPDecodeError, decode_export, spans_of

router = APIRouter(prefix="/v1", tags=["otlp"], route_class=GuardedRoute)

#: gRPC status codes of the failures (what a ``google.rpc.Status`` names).
_GRPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}


class OTLPFailure(Exception):
    """A refused export: its HTTP status, message and lmdeck error code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OTLPFailure(400, f"the body is not valid gzip: {exc}", "invalid_encoding") from None
    if len(out) > limit:
        raise OTLPFailure(413, f"the export is larger than {limit} bytes once decoded", "body_too_large")
    return out


def _decode(body: bytes, content_type: str, principal: Principal) -> DecodedSpans:
    try:
        export = decode_export(body, content_type)
    except OTLPDecodeError as exc:
        raise OTLPFailure(400, str(exc), "invalid_otlp") from None
    return spans_of(export, team_id=principal.team_id, key_id=principal.key_id, received_at=time.time())


def _failure(exc: OTLPFailure, content_type: str) -> Response:
    headers = {"retry-after": "5"} if exc.status == 503 else None
    if content_type == PROTOBUF:
        status = Status(code=_GRPC_CODES.get(exc.status, 2), message=exc.message)
        return Response(status.SerializeToString(), status_code=exc.status, media_type=PROTOBUF, headers=headers)
    raise APIError(exc.status, exc.message, code=exc.code, headers=headers)


#: The request body as the OpenAPI document describes it (the route reads it raw, in either encoding).
_BODY = {
    "required": True,
    "content": {
        PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "description": "an OTLP/JSON ExportTraceServiceRequest"}},
    },
}


@router.post("/traces", summary="Receive spans over OTLP/HTTP (protobuf or JSON)", openapi_extra={"requestBody": _BODY})
async def export_traces(request: Request, principal: Principal = Depends(require("inference"))) -> Response:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if content_type not in CONTENT_TYPES:
            raise OTLPFailure(
                415,
                f"unsupported content type {content_type or '(none)'!r}: send {' or '.join(CONTENT_TYPES)}",
                "unsupported_media_type",
            )
        gateway = gateway_of(request)
        limit = gateway.settings.tracing.otlp_max_body_bytes
        body = await request.body()
        if len(body) > limit:
            raise OTLPFailure(413, f"the export is larger than {limit} bytes", "body_too_large")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            body = await run_in_threadpool(_gunzip, body, limit)
        elif encoding not in ("", "identity"):
            raise OTLPFailure(
                415, f"unsupported content encoding {encoding!r}: send gzip or none", "unsupported_encoding"
            )
        decoded = await run_in_threadpool(_decode, body, content_type, principal)
        if decoded.spans and not gateway.span_writer.submit(decoded.spans):
            raise OTLPFailure(503, "the span queue is full: retry later", "span_queue_full")
    except OTLPFailure as exc:
        return _failure(exc, content_type)
    answer = ExportTraceServiceResponse()
    if decoded.rejected:
        answer.partial_success.rejected_spans = decoded.rejected
        answer.partial_success.error_message = decoded.reason or ""
    if content_type == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(answer, indent=None), media_type="application/json")
