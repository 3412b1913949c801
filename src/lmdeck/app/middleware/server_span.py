"""The SERVER span of every HTTP request, and the ``traceparent`` that announces it.

This middleware sits just inside :class:`~lmdeck.app.middleware.request_id.RequestIdMiddleware` and
outside everything else, so that requests refused at the edge (a body too large, a bad key) and
internal errors have their span too. While the request runs it keeps a
:class:`~lmdeck.tracing.request_spans.RequestSpans` current, to which the dispatcher adds one attempt per
upstream call and the exporter the trace record; once the response is complete it hands them to the
exporter (when OpenTelemetry export is configured).

The response's ``traceparent`` names lmdeck's span only when that span is exported (or would be, were
an exporter configured):

* a caller's ``traceparent`` with the sampled flag unset: nothing is exported and no ``traceparent`` is
  answered (upstream calls still carry one, unsampled, so the upstream does not sample either);
* the paths of ``tracing.unspanned_paths`` (health probes, ``/metrics``) get no span and no ``traceparent``;
* requests refused before any upstream call (400, 401, 403, 413, 429): at most
  ``tracing.refused_spans_per_second`` of them are exported (a token bucket holding as many); a flood of
  bad keys costs neither memory nor export beyond that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.semconv.attributes import (
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.tracing.otel import OTelExporter
from lmdeck.tracing.request_spans import CURRENT_REQUEST, RequestSpans

#: Statuses of requests refused without an upstream call, whose spans are rate-limited.
REFUSED = frozenset({400, 401, 403, 413, 429})
log = logging.getLogger(__name__)
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})


class TokenBucket:
    """``rate`` tokens a second, holding at most ``max(rate, 1)``; :meth:`take` says whether one was left.

    >>> bucket = TokenBucket(2.0, clock=lambda: 0.0)
    >>> [bucket.take() for _ in range(3)]
    [True, True, False]
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0) if rate > 0 else 0.0
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _server_attributes(scope: Scope) -> dict[str, Any]:
    method = str(scope.get("method", "GET"))
    attrs: dict[str, Any] = {
        http_attributes.HTTP_REQUEST_METHOD: method if method in KNOWN_METHODS else "_OTHER",
        url_attributes.URL_PATH: str(scope.get("path", "")),
        url_attributes.URL_SCHEME: str(scope.get("scheme", "http")),
        network_attributes.NETWORK_PROTOCOL_VERSION: str(scope.get("http_version", "1.1")),
    }
    if method not in KNOWN_METHODS:
        attrs[http_attributes.HTTP_REQUEST_METHOD_ORIGINAL] = method
    server = scope.get("server")
    if server and server[1] is not None:
        attrs[server_attributes.SERVER_ADDRESS] = str(server[0])
        attrs[server_attributes.SERVER_PORT] = int(server[1])
    return attrs


class ServerSpanMiddleware:
    """Opens the request's spans, announces the SERVER span in ``traceparent``, exports them at the end."""

    def __init__(
        self,
        app: ASGIApp,
        exporter: OTelExporter | None = None,
        refused_per_second: float = 10.0,
        unspanned_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.exporter = exporter
        self.refused = TokenBucket(refused_per_second)
        self.unspanned = frozenset(unspanned_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ids = RequestIds.of(scope) if scope["type"] == "http" else None
        if ids is None or scope.get("path") in self.unspanned:
            await self.app(scope, receive, send)
            return
        spans = RequestSpans(ids.trace_id, ids.span_id, sampled=ids.sampled, tracestate=ids.tracestate)
        status = 500
        announced = False

        async def send_announcing(message: Message) -> None:
            nonlocal status, announced
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if spans.sampled and status in REFUSED and not spans.attempts:
                    spans.sampled = self.refused.take()
                if spans.sampled:
                    trace_id = ids.client_trace_id or ids.trace_id
                    headers = list(message.get("headers", []))
                    headers.append((b"traceparent", f"00-{trace_id}-{ids.span_id}-01".encode()))
                    message["headers"] = headers
                    announced = True
            await send(message)

        token = CURRENT_REQUEST.set(spans)
        try:
            await self.app(scope, receive, send_announcing)
        finally:
            CURRENT_REQUEST.reset(token)
            spans.closed = True
            if self.exporter is not None and spans.sampled and announced:
                route = scope.get("route")
                template = getattr(route, "path", None)
                attrs = _server_attributes(scope)
                if template:
                    attrs[http_attributes.HTTP_ROUTE] = template
                method = attrs[http_attributes.HTTP_REQUEST_METHOD]
                name = f"{method} {template}" if template else str(method)
                attrs["lmdeck.request_id"] = ids.request_id
                spans.exported = True
                try:
                    self.exporter.export_request(
                        spans,
                        attrs,
                        status,
                        time.time_ns(),
                        name,
                        client_trace_id=ids.client_trace_id,
                        parent_span_id=ids.parent_span_id,
                    )
                except Exception:  # a span that cannot be built must not fail the request it describes
                    log.exception("exporting the spans of request %s failed", ids.request_id)
