"""The :class:`~lmdeck.providers.transport.Transport` over an ``httpx.AsyncClient``.

Useful where httpx's own transports help: an in-process ASGI app or a scripted
``httpx.MockTransport`` in tests::

    app = FakeUpstream(FakeConfig())
    transport = HttpxTransport(httpx.AsyncClient(transport=httpx.ASGITransport(app=app)))
    provider = OpenAIProvider(target, ProviderContext(settings=settings, transport=transport))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import httpx

from lmdeck.providers.base import TransportFailure, UpstreamError, transport_error
from lmdeck.providers.transport import Timeout, UpstreamResponse


def _failure(exc: httpx.HTTPError) -> TransportFailure:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    return "broken"


def upstream_error(exc: httpx.HTTPError, url: str, timeout: Timeout) -> UpstreamError:
    """An httpx failure as the :class:`UpstreamError` every transport raises for it."""
    failure = _failure(exc)
    detail = str(exc) if failure == "connect" else f"{type(exc).__name__}: {exc}"
    return transport_error(failure, url, timeout.total, detail)


def _httpx_timeout(timeout: Timeout) -> httpx.Timeout:
    return httpx.Timeout(timeout.total, connect=timeout.connect)


class HttpxStream:
    """One streamed POST through httpx; an async context manager yielding itself."""

    def __init__(self, client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout):
        self.url = url
        self.timeout = timeout
        self._opening = client.stream("POST", url, content=body, headers=headers, timeout=_httpx_timeout(timeout))
        self._response: httpx.Response | None = None

    @property
    def response(self) -> httpx.Response:
        if self._response is None:
            raise RuntimeError("the stream is not open: use `async with transport.stream(...) as stream`")
        return self._response

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    async def __aenter__(self) -> HttpxStream:
        try:
            self._response = await self._opening.__aenter__()
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._opening.__aexit__(kind, exc, tb)
        except httpx.HTTPError as failure:
            raise upstream_error(failure, self.url, self.timeout) from failure

    async def read(self) -> bytes:
        try:
            return await self.response.aread()
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc

    async def lines(self) -> AsyncIterator[str]:
        try:
            async for line in self.response.aiter_lines():
                yield line
        except httpx.HTTPError as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc


class HttpxTransport:
    """Upstream calls through one ``httpx.AsyncClient`` (a pooled one of its own when none is given).

    >>> transport = HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(handler)))  # doctest: +SKIP
    """

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self.client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30),
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> UpstreamResponse:
        try:
            response = await self.client.post(url, content=body, headers=headers, timeout=_httpx_timeout(timeout))
        except httpx.HTTPError as exc:
            raise upstream_error(exc, url, timeout) from exc
        return UpstreamResponse(response.status_code, response.headers, response.content)

    def stream(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> HttpxStream:
        return HttpxStream(self.client, url, body, headers, timeout)

    async def aclose(self) -> None:
        await self.client.aclose()
