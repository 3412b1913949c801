"""A :class:`~lmdeck.providers.transport.Transport` that carries W3C trace context to the upstream.

It wraps another transport. On each call made during an upstream attempt (see
:mod:`lmdeck.tracing.request_spans`) it adds ``traceparent`` (the attempt's span as the parent, so an
instrumented upstream joins lmdeck's trace under it) and the caller's ``tracestate``, and notes on the
attempt where the call went and the HTTP status the upstream answered::

    transport = TracedTransport(AiohttpTransport())     # as the gateway builds it
    answer = await transport.post(url, body, headers, Timeout.for_target(30))

Outside an attempt (a provider's model listing, a health probe) calls pass through unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from lmdeck.providers.transport import Timeout, Transport, UpstreamResponse, UpstreamStream
from lmdeck.tracing.request_spans import CURRENT_ATTEMPT


def _with_context(url: str, headers: Mapping[str, str]) -> Mapping[str, str]:
    attempt = CURRENT_ATTEMPT.get()
    if attempt is None:
        return headers
    attempt.sent_to(url)
    kept = {name: value for name, value in headers.items() if name.lower() not in ("traceparent", "tracestate")}
    return {**kept, **attempt.propagation_headers()}


def _received(status: int) -> None:
    attempt = CURRENT_ATTEMPT.get()
    if attempt is not None:
        attempt.received(status)


class TracedTransport:
    """Adds ``traceparent``/``tracestate`` to each upstream call of an attempt and records its status."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> UpstreamResponse:
        answer = await self.inner.post(url, body, _with_context(url, headers), timeout)
        _received(answer.status)
        return answer

    @asynccontextmanager
    async def stream(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout
    ) -> AsyncIterator[UpstreamStream]:
        async with self.inner.stream(url, body, _with_context(url, headers), timeout) as stream:
            _received(stream.status)
            yield stream

    async def aclose(self) -> None:
        await self.inner.aclose()
