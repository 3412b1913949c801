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

With an :class:`~lmdeck.providers.egress.EgressPolicy`, every URL is checked before the call
(scheme, metadata and link-local hosts) and every socket is checked by aiohttp's socket
factory against the very address it is about to connect to, after DNS: a host name that
re-resolves to a refused address (DNS rebinding) is refused there. A refusal is an
:class:`UpstreamError` with status 403 and kind ``egress_refused``; it is not retried. Through a
proxy, the socket goes to the proxy, so it is the proxy's address that is checked.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp

from lmdeck.providers.base import TransportFailure, UpstreamError, transport_error
from lmdeck.providers.egress import EgressPolicy, EgressRefused, Refusal
from lmdeck.providers.transport import Timeout, UpstreamResponse

log = logging.getLogger(__name__)

#: aiohttp's socket factory argument: (family, type, proto, canonical name, socket address).
AddrInfo = tuple[int, int, int, str, tuple[object, ...]]

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


def egress_error(url: str, detail: str) -> UpstreamError:
    """A connection the egress policy refused: 403, not retried, not a breaker failure."""
    log.warning("egress policy refused a call to %s: %s", url, detail)
    return UpstreamError(
        403,
        "the egress policy refused the upstream's address (see the gateway log; an admin may allow it in `egress`)",
        retryable=False,
        kind="egress_refused",
    )


def _refused(exc: BaseException) -> str | None:
    """The egress refusal behind an aiohttp connect failure, or None."""
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, EgressRefused):
        return str(cause)
    # Happy eyeballs folds several refused addresses into one OSError(EACCES, "Multiple exceptions: ...").
    if isinstance(cause, OSError) and cause.errno == errno.EACCES and "egress policy" in str(cause):
        return str(cause)
    return None


def upstream_error(exc: BaseException, url: str, timeout: Timeout) -> UpstreamError:
    """An aiohttp failure as the :class:`UpstreamError` every transport raises for it."""
    refused = _refused(exc)
    if refused is not None:
        return egress_error(url, refused)
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
        transport.check_url(self.url)
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
    ``egress`` checks every URL and every address connected to; ``resolver`` replaces aiohttp's
    DNS resolver (the egress check runs on whatever address it answers).

    >>> transport = AiohttpTransport()
    >>> ctx = ProviderContext(settings=settings, transport=transport)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        limit: int = 1000,
        keepalive: float = 30.0,
        egress: EgressPolicy | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self.limit = limit
        self.keepalive = keepalive
        self.egress = egress
        self.resolver = resolver
        self._url_checks: dict[str, Refusal | None] = {}
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
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=0,
                keepalive_timeout=self.keepalive,
                socket_factory=self._socket if self.egress is not None else None,
                resolver=self.resolver,
            )
            session = self._session = aiohttp.ClientSession(connector=connector)
            self._loop = loop
        return session

    def _socket(self, addr_info: AddrInfo) -> socket.socket:
        """aiohttp's socket factory: the address checked is the address connected to."""
        family, kind, proto, _, address = addr_info
        assert self.egress is not None
        refused = self.egress.address_refusal(str(address[0]))
        if refused is not None:
            raise EgressRefused(refused)
        return socket.socket(family=family, type=kind, proto=proto)

    def check_url(self, url: str) -> None:
        """Refuse, before any connection, a URL whose scheme or host the egress policy refuses."""
        if self.egress is None:
            return
        try:
            refused = self._url_checks[url]
        except KeyError:
            if len(self._url_checks) > 4096:
                self._url_checks.clear()
            refused = self._url_checks[url] = self.egress.refusal(url, trusted=True)
        if refused is not None:
            raise egress_error(url, refused.message)

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
        self.check_url(url)
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
