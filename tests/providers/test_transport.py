"""Both transports against one contract, over real sockets on loopback.

The server is a few lines of asyncio speaking HTTP/1.1 by hand, so that each test can
misbehave exactly: split lines across packets, truncate a body, hang, refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx
import pytest

from lmdeck.providers.base import UpstreamError, UpstreamTimeout
from lmdeck.providers.transport import Timeout, Transport
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.providers.transport_aiohttp import upstream_error as aiohttp_error
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.providers.transport_httpx import upstream_error as httpx_error
from lmdeck.testing.servers import free_port

JSON = {"content-type": "application/json"}
QUICK = Timeout(total=0.3, connect=0.3)
#: For a stream that must open and deliver its first line before falling silent: room for a loaded machine.
PATIENT = Timeout(total=2.0, connect=2.0)
AMPLE = Timeout.for_target(10)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


Reply = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServer:
    """HTTP/1.1 on 127.0.0.1 with keep-alive; every request is answered by ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.seen: list[Seen] = []
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(head[0].split(" ")[1], headers, body)
                self.seen.append(seen)
                await self.reply(seen, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the server is closing (a cancelled handler would be logged)
        finally:
            self._tasks.discard(task)
            writer.close()


def answer(status: int, body: bytes, **headers: str) -> Reply:
    async def reply(seen: Seen, writer: asyncio.StreamWriter) -> None:
        extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()

    return reply


def chunked(*pieces: bytes, then_hang: bool = False) -> Reply:
    """Each piece its own chunk, sent apart so that the client reads them separately."""

    async def reply(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        if then_hang:
            await asyncio.sleep(3600)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return reply


async def hang(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def truncate(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
    await writer.drain()
    writer.close()
    raise ConnectionError("closed on purpose")


@pytest.fixture(params=["aiohttp", "httpx"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made: Transport = AiohttpTransport(limit=10) if request.param == "aiohttp" else HttpxTransport()
    yield made
    await made.aclose()


async def test_post_returns_status_headers_and_body(transport: Transport) -> None:
    async with LoopbackServer(answer(200, b'{"ok":true}', x_request_id="r1")) as server:
        got = await transport.post(server.url, b'{"q":1}', {**JSON, "authorization": "Bearer k"}, AMPLE)
        again = await transport.post(server.url, b"{}", JSON, AMPLE)
    assert got.status == 200 and got.body == b'{"ok":true}' and got.headers["X-Request-Id"] == "r1"
    assert server.seen[0].body == b'{"q":1}' and server.seen[0].headers["authorization"] == "Bearer k"
    assert again.status == 200 and server.connections == 1, "the connection is kept alive and reused"


async def test_an_error_status_is_returned_with_its_body(transport: Transport) -> None:
    async with LoopbackServer(answer(429, b'{"error":"slow down"}', retry_after="3")) as server:
        got = await transport.post(server.url, b"{}", JSON, AMPLE)
        async with transport.stream(server.url, b"{}", JSON, AMPLE) as stream:
            assert stream.status == 429 and stream.headers["retry-after"] == "3"
            assert await stream.read() == b'{"error":"slow down"}'
    assert got.status == 429 and got.headers["retry-after"] == "3" and got.body == b'{"error":"slow down"}'


async def test_stream_lines_arrive_whole_whatever_the_packets(transport: Transport) -> None:
    long_line = b"data: " + b"x" * 200_000
    pieces = (b"data: one\r\n\r\nda", b"ta: t", b"wo\n\n: keep-alive\n\n", long_line, b"\n\ndata: [DONE]\n\n")
    async with (
        LoopbackServer(chunked(*pieces)) as server,
        transport.stream(server.url, b"{}", JSON, AMPLE) as stream,
    ):
        assert stream.status == 200
        lines = [line async for line in stream.lines()]
    assert lines == ["data: one", "", "data: two", "", ": keep-alive", "", long_line.decode(), "", "data: [DONE]", ""]


async def test_leaving_a_stream_early_frees_its_connection(transport: Transport) -> None:
    async with LoopbackServer(chunked(b"data: a\n\n", then_hang=True)) as server:
        async with transport.stream(server.url, b"{}", JSON, AMPLE) as stream:
            async for line in stream.lines():
                assert line == "data: a"
                break
        server.reply = answer(200, b"{}")
        assert (await transport.post(server.url, b"{}", JSON, AMPLE)).status == 200
    assert server.connections == 2, "a half-read stream's connection is not put back in the pool"


async def test_a_refused_connection_is_a_retryable_502(transport: Transport) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    with pytest.raises(UpstreamError) as info:
        await transport.post(url, b"{}", JSON, AMPLE)
    assert info.value.status == 502 and info.value.retryable and "base_url" in info.value.message
    with pytest.raises(UpstreamError) as info:
        async with transport.stream(url, b"{}", JSON, AMPLE):
            pass
    assert info.value.status == 502 and "cannot connect" in info.value.message


async def test_no_answer_in_time_is_a_504(transport: Transport) -> None:
    async with LoopbackServer(hang) as server:
        with pytest.raises(UpstreamTimeout) as info:
            await transport.post(server.url, b"{}", JSON, QUICK)
    assert info.value.status == 504 and info.value.kind == "timeout" and "0.3s" in info.value.message


async def test_a_stream_gone_silent_is_a_504(transport: Transport) -> None:
    async with (
        LoopbackServer(chunked(b"data: a\n", then_hang=True)) as server,
        transport.stream(server.url, b"{}", JSON, PATIENT) as stream,
    ):
        lines = stream.lines()
        assert await anext(lines) == "data: a"
        with pytest.raises(UpstreamTimeout):
            await anext(lines)


async def test_a_truncated_body_is_a_retryable_502(transport: Transport) -> None:
    async with LoopbackServer(truncate) as server:
        with pytest.raises(UpstreamError) as info:
            await transport.post(server.url, b"{}", JSON, AMPLE)
    assert info.value.status == 502 and info.value.retryable and "broke the connection" in info.value.message


def test_connect_timeouts_read_alike() -> None:
    from_aiohttp = aiohttp_error(aiohttp.ConnectionTimeoutError("slow"), "http://up/v1", AMPLE)
    from_httpx = httpx_error(httpx.ConnectTimeout("slow"), "http://up/v1", AMPLE)
    assert isinstance(from_aiohttp, UpstreamTimeout) and isinstance(from_httpx, UpstreamTimeout)
    assert from_aiohttp.message == from_httpx.message and "could not connect" in from_aiohttp.message


def test_one_aiohttp_transport_serves_successive_event_loops() -> None:
    transport = AiohttpTransport()

    async def call() -> int:
        async with LoopbackServer(answer(200, b"{}")) as server:
            return (await transport.post(server.url, b"{}", JSON, AMPLE)).status

    assert asyncio.run(call()) == 200
    assert asyncio.run(call()) == 200, "a session bound to a closed loop is replaced"

    async def close_then_call() -> int:
        await transport.aclose()
        return await call()

    assert asyncio.run(close_then_call()) == 200
    asyncio.run(transport.aclose())
