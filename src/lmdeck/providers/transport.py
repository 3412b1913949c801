"""How providers reach their upstreams: one small interface, one implementation per module.

A transport POSTs a body and hands back either the whole answer or a stream to read
server-sent-event lines from::

    transport = AiohttpTransport()                      # the gateway's default
    answer = await transport.post(url, body, headers, Timeout.for_target(30))
    async with transport.stream(url, body, headers, Timeout.for_target(30)) as stream:
        if stream.status >= 400:
            raise error_from_response(stream.status, stream.headers, await stream.read())
        async for line in stream.lines():
            ...
    await transport.aclose()

Implementations: :class:`~lmdeck.providers.transport_aiohttp.AiohttpTransport` (one pooled
aiohttp session, the default) and :class:`~lmdeck.providers.transport_httpx.HttpxTransport`
(wraps an ``httpx.AsyncClient``: in-process ASGI apps and mock transports in tests).

Errors: an HTTP error status is *returned*, so that the provider can read the upstream's
error body. Failures below HTTP are *raised* as :class:`~lmdeck.providers.base.UpstreamError`
through :func:`~lmdeck.providers.base.transport_error`:

- a connection refused or reset, a broken stream: 502, retryable;
- no connection within ``Timeout.connect``, or no answer within ``Timeout.total``: 504
  (:class:`~lmdeck.providers.base.UpstreamTimeout`), retryable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: The longest a provider waits to open a connection, whatever the target's ``timeout``.
MAX_CONNECT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Timeout:
    """Deadlines for one upstream call.

    ``total`` bounds a whole answer (:meth:`Transport.post`); for a stream it bounds each
    wait for more bytes, so a long stream that keeps talking is not cut. ``connect``
    bounds opening a connection. The gateway's dispatcher adds its own deadline for a
    stream's first chunk (the target's ``ttft_timeout``).

    >>> Timeout.for_target(30)
    Timeout(total=30, connect=10.0)
    """

    total: float
    connect: float

    @classmethod
    def for_target(cls, seconds: float) -> Timeout:
        return cls(seconds, min(MAX_CONNECT_SECONDS, seconds))


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A whole answer: status, headers (case-insensitive) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream(Protocol):
    """An answer being received: status and headers are known, the body is still coming."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The rest of the body at once (for an error answer)."""
        ...

    def lines(self) -> AsyncIterator[str]:
        """The body line by line, without line endings, as it arrives."""
        ...


@runtime_checkable
class Transport(Protocol):
    """What providers call upstreams through; shared by every provider of a gateway."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> UpstreamResponse: ...

    def stream(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout
    ) -> AbstractAsyncContextManager[UpstreamStream]: ...

    async def aclose(self) -> None: ...
