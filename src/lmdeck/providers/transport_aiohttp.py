"""The gateway's default :class:`~lmdeck.providers.transport.Transport`: one pooled aiohttp session.

aiohttp spends several times less CPU per request than httpx's connection pool, which
matters for a gateway whose every request is an upstream call. The session is created on
first use, inside the running event loop (aiohttp binds a session to its loop), and keeps
connections alive between calls::

    transport = AiohttpTransport(limit=1000)
    answer = await transport.post(url, body, {"content-type": "application/json"}, Timeout.for_target(30))
    await transport.aclose()

Proxies come from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), read once
per URL; netrc files are not read.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp

from lmdeck.providers.base import TransportFailure, UpstreamError, transport_error
from lmdeck.providers.transport import Timeout, UpstreamResponse

#: What aiohttp raises below HTTP (its own errors, and timeouts and socket errors it lets through).
FAILURES = (aiohttp.ClientError, OSError)


def _failure(exc: BaseException) -> TransportFailure:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect_timeout"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    return "broken"


def upstream_error(exc: BaseException, url: str, timeout: Timeout) -> UpstreamError:
    """An aiohttp failure as the :class:`UpstreamError` every transport raises for it."""
    failure = _failure(exc)
    detail = str(exc) if failure == "connect" else f"{type(exc).__name__}: {exc}"
    return transport_error(failure, url, timeout.total, detail)


def _env_proxy(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies[parts.scheme]


class AiohttpStream:
    """One streamed POST through aiohttp; an async context manager yielding itself."""

    def __init__(
        self,
        transport: AiohttpTransport,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: Timeout,
    ) -> None:
        self.transport = transport
        self.url = url
        self.body = body
        self.request_headers = headers
        self.timeout = timeout
        self._response: aiohttp.ClientResponse | None = None

    @property
    def response(self) -> aiohttp.ClientResponse:
        if self._response is None:
            raise RuntimeError("the stream is not open: use `async with transport.stream(...) as stream`")
        return self._response

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    async def __aenter__(self) -> AiohttpStream:
        transport = self.transport
        try:
            self._response = await transport.session().post(
                self.url,
                data=self.body,
                headers=self.request_headers,
                timeout=transport.stream_timeout(self.timeout),
                proxy=transport.proxy(self.url),
                allow_redirects=False,
            )
        except FAILURES as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Released with its body unread, the connection is closed rather than pooled.
        response = self.response
        response.release()
        await response.wait_for_close()

    async def read(self) -> bytes:
        try:
            return await self.response.read()
        except FAILURES as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc

    async def lines(self) -> AsyncIterator[str]:
        # Split by hand rather than with readline(): an SSE line (a large tool call) may
        # exceed aiohttp's read buffer, which readline() refuses.
        pending = b""
        try:
            async for chunk in self.response.content.iter_any():
                if b"\n" not in chunk:
                    pending += chunk
                    continue
                *complete, pending = (pending + chunk).split(b"\n")
                for line in complete:
                    text = line.rstrip(b"\r").decode("utf-8", "replace")
                    if "\r" in text:
                        for part in text.split("\r"):
                            yield part
                    else:
                        yield text
        except FAILURES as exc:
            raise upstream_error(exc, self.url, self.timeout) from exc
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")


class AiohttpTransport:
    """Upstream calls through one aiohttp session with a large keep-alive pool.

    ``limit`` caps open connections across all upstreams (calls beyond it wait for one
    to free up, within their ``connect`` timeout); idle ones close after ``keepalive`` seconds.

    >>> transport = AiohttpTransport()
    >>> ctx = ProviderContext(settings=settings, transport=transport)  # doctest: +SKIP
    """

    def __init__(self, *, limit: int = 1000, keepalive: float = 30.0) -> None:
        self.limit = limit
        self.keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._post_timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._stream_timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._proxies: dict[str, str | None] = {}

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created in the running loop on first use (and again after :meth:`aclose`)."""
        session = self._session
        loop = asyncio.get_running_loop()
        if session is None or session.closed or self._loop is not loop:
            if session is not None and not session.closed:
                # Bound to another loop, it cannot be closed from this one; let it go without a warning.
                session.detach()
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, keepalive_timeout=self.keepalive)
            session = self._session = aiohttp.ClientSession(connector=connector)
            self._loop = loop
        return session

    def post_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._post_timeouts.get(timeout)
        if cached is None:
            cached = aiohttp.ClientTimeout(total=timeout.total, sock_connect=timeout.connect)
            self._post_timeouts[timeout] = cached
        return cached

    def stream_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._stream_timeouts.get(timeout)
        if cached is None:
            # No total: a stream may talk for longer than the target's timeout, as long as it keeps talking.
            cached = aiohttp.ClientTimeout(
                total=None, connect=timeout.total, sock_connect=timeout.connect, sock_read=timeout.total
            )
            self._stream_timeouts[timeout] = cached
        return cached

    def proxy(self, url: str) -> str | None:
        try:
            return self._proxies[url]
        except KeyError:
            proxy = self._proxies[url] = _env_proxy(url)
            return proxy

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> UpstreamResponse:
        try:
            async with self.session().post(
                url,
                data=body,
                headers=headers,
                timeout=self.post_timeout(timeout),
                proxy=self.proxy(url),
                allow_redirects=False,
            ) as response:
                content = await response.read()
        except FAILURES as exc:
            raise upstream_error(exc, url, timeout) from exc
        return UpstreamResponse(response.status, response.headers, content)

    def stream(self, url: str, body: bytes, headers: Mapping[str, str], timeout: Timeout) -> AiohttpStream:
        return AiohttpStream(self, url, body, headers, timeout)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
