"""The HTTP/1.1 connection protocol ``lmdeck serve`` runs: uvicorn's, with limits on the request head.

uvicorn starts no timer on a new connection and stops its keep-alive timer at the first
byte of a request, so a client sending its headers one byte at a time holds a connection
(and its memory) for as long as it likes; nor does it bound the size of the header block.
:class:`GuardedHttpToolsProtocol` adds both, before any request reaches the app:

- ``header_timeout``: seconds from the connection's opening, or from the first byte of a
  request on a kept-alive connection, until its whole header block has arrived; past it
  the client gets a 408 (or, having sent nothing, just the close) and the connection closes;
- ``max_header_bytes``: the request line and headers together; past it a 431, then the close;
- ``body_timeout``: seconds a request body may go without a byte while the app waits for it;
  past it the client gets a 408 ``body_timeout`` (or, once an answer has begun, just the close).
  Time during which the app is not reading (uvicorn paused the socket) does not count.

Errors are JSON in OpenAI's shape, like every other answer of the gateway::

    uvicorn.run(app, http=guarded_protocol(header_timeout=10, max_header_bytes=32768, body_timeout=30))
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from lmdeck.protocol import error_body


def raw_error(status: int, message: str, code: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for answers written below the app."""
    body = orjson.dumps(error_body(message, "invalid_request_error", code=code))
    head = (
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head + body


async def _header_too_large(scope: Any, receive: Any, send: Any) -> None:
    # An ASGI app standing in for lmdeck's, so uvicorn's request state stays consistent.
    body = orjson.dumps(error_body(scope["lmdeck.header_error"], "invalid_request_error", code="headers_too_large"))
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read timeouts and a header-size limit (class attributes)."""

    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 32 * 1024
    body_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._head_bytes = 0
        self._head_seen = 0
        self._body_timer: asyncio.TimerHandle | None = None

    # -- the clock on the request head -------------------------------------------------------

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._head_seen:
            message = f"the request headers did not arrive within {self.header_timeout:g}s"
            self.transport.write(raw_error(408, message, "header_timeout"))
        self.transport.close()

    # -- the clock on the request body -------------------------------------------------------

    def _arm_body_timer(self) -> None:
        self._disarm_body_timer()
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The app has not read what arrived: the wait is lmdeck's, not the client's.
            self._arm_body_timer()
            return
        if not cycle.response_started:
            message = f"the request body stopped arriving: no byte for {self.body_timeout:g}s"
            self.transport.write(raw_error(408, message, "body_timeout"))
        self.transport.close()

    # -- uvicorn's hooks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_seen = 0
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._reading_head or self.transport.is_closing():
            return
        # Still inside a header block: all of this chunk may be waiting in the parser's buffer.
        self._head_seen += len(data)
        self._head_bytes += len(data)
        if self._head_bytes > self.max_header_bytes:
            self._end_head()
            self.transport.write(raw_error(431, self._too_large_message(), "headers_too_large"))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        self._end_head()
        self._head_seen = 0
        if size <= self.max_header_bytes:
            super().on_headers_complete()
            self._arm_body_timer()
            return
        self.scope["lmdeck.header_error"] = self._too_large_message()  # type: ignore[typeddict-unknown-key]
        app, self.app = self.app, _header_too_large
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm_body_timer()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_error(400, f"the request is not valid HTTP/1.1: {msg}", "invalid_http"))
        self.transport.close()

    def _too_large_message(self) -> str:
        return f"the request line and headers are larger than {self.max_header_bytes} bytes (max_header_bytes)"


def guarded_protocol(
    *, header_timeout: float, max_header_bytes: int, body_timeout: float = 30.0
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with these limits (timeouts in seconds)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes, "body_timeout": body_timeout},
    )
