"""Requests to ``/v1/`` refused before routing (400, 401, 403, 413, 429) get a trace record and a metric sample.

The middleware sits inside the request-id and span middlewares and outside the body limit, so that a
body too large is seen too. When the answer is a refusal and no pipeline step recorded the request,
it builds the record (ids, status, lmdeck's error code and message, the key and team when a key was
read, the route template, the client's address; never a body) and hands it to
:class:`~lmdeck.tracing.refusals.RefusalRecorder`, which counts it and samples what it writes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.pipeline.principal import Principal
from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.policy.auth import PRINCIPAL_STATE
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.refusals import RefusalRecorder

REFUSED = frozenset({400, 401, 403, 413, 429})
#: The trace ``kind`` of the inference paths; other /v1/ paths are recorded as ``http``.
KINDS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}
#: The most of a refusal's answer read for its error code and message.
MAX_ERROR_BYTES = 16 * 1024


def _error(body: bytes) -> tuple[str | None, str | None]:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)


class RefusedRequestMiddleware:
    """Counts and records ``/v1/`` requests refused before routing (module docs)."""

    def __init__(self, app: ASGIApp, recorder: RefusalRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ids = RequestIds.of(scope) if scope["type"] == "http" else None
        if ids is None or not str(scope.get("path", "")).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        body = bytearray()

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status in REFUSED and len(body) < MAX_ERROR_BYTES:
                body.extend(message.get("body", b"")[: MAX_ERROR_BYTES - len(body)])
            await send(message)

        self.recorder.open(ids.request_id)
        try:
            await self.app(scope, receive, watching)
        finally:
            recorded = self.recorder.close(ids.request_id)
            if status in REFUSED and not recorded:
                self.recorder.refused(self._record(scope, ids, status, bytes(body), started), _address(scope))

    @staticmethod
    def _record(scope: Scope, ids: RequestIds, status: int, body: bytes, started: float) -> TraceRecord:
        code, message = _error(body)
        principal = scope.get("state", {}).get(PRINCIPAL_STATE)
        known = principal if isinstance(principal, Principal) else None
        route = scope.get("route")
        template = getattr(route, "path", None)
        path = str(scope.get("path", ""))
        refusal: dict[str, Any] = {"path": template or "unmatched", "method": str(scope.get("method", ""))}
        return TraceRecord(
            trace_id=ids.trace_id,
            request_id=ids.request_id,
            span_id=ids.span_id,
            parent_span_id=ids.parent_span_id,
            client_request_id=ids.client_request_id,
            client_trace_id=ids.client_trace_id,
            kind=KINDS.get(template or path, "http"),
            key_id=known.key_id if known else None,
            team_id=known.team_id if known else None,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            status_code=status,
            error=message,
            error_type=code or str(status),
            tags=["refused"],
            metadata={"refused": {**refusal, "client_address": _address(scope)}},
        )


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
