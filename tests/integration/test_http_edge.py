"""The HTTP edge of a real ``lmdeck serve``: slow or oversized request heads, bodies past the limit,
bytes that are not HTTP, redirects. Raw sockets where an HTTP client would hide what is on the wire.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

HEADER_TIMEOUT = 1.0
MAX_HEADER_BYTES = 4096
MAX_BODY = 8192


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return gateway(
        [{"name": "chat", "targets": [openai_target(fake_upstream)]}],
        header_timeout=HEADER_TIMEOUT,
        max_header_bytes=MAX_HEADER_BYTES,
        max_body_bytes=MAX_BODY,
    )


def connect(gw: GatewayProcess) -> socket.socket:
    sock = socket.create_connection((gw.host, gw.port), timeout=60)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_sending_its_headers_byte_by_byte_is_dropped(gw: GatewayProcess) -> None:
    head = b"GET /health/live HTTP/1.1\r\nHost: lmdeck\r\nX-Pad: " + b"p" * 400 + b"\r\n\r\n"
    with connect(gw) as sock:
        sock.settimeout(0.1)
        sent = 0
        answer = b""
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sent += 1
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        # Sending all of it takes 50 times the header timeout: the server must have cut it short.
        assert sent < len(head), "the server waited for the whole head"
        if answer:
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"code":"header_timeout"' in answer


def test_a_connection_that_sends_nothing_is_closed(gw: GatewayProcess) -> None:
    with connect(gw) as sock:
        assert read_all(sock) == b""


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-Many-%d: %s\r\n" % (i, b"v" * 100) for i in range(60)),
        b"X-One-Huge: " + b"v" * (MAX_HEADER_BYTES * 4) + b"\r\n",
    ],
    ids=["many headers", "one huge header"],
)
def test_a_header_block_over_the_limit_gets_a_431(gw: GatewayProcess, headers: bytes) -> None:
    with connect(gw) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: lmdeck\r\n" + headers + b"\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"headers_too_large" in answer


def test_a_header_block_under_the_limit_is_served(gw: GatewayProcess) -> None:
    headers = {f"x-fill-{i}": "v" * 100 for i in range(25)}
    response = httpx.get(f"{gw.url}/health/live", headers=headers, timeout=10)
    assert response.status_code == 200


def test_bytes_that_are_not_http_get_a_json_400(gw: GatewayProcess) -> None:
    with connect(gw) as sock:
        sock.sendall(b"BREW /pot HTTP/1.1\r\nHost: lmdeck\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b'"code":"invalid_http"' in answer


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // 512 + 1):
        yield b"x" * 512
    yield b'"}'


@pytest.mark.parametrize("path", ["/api/teams", "/api/registry/models", "/v1/chat/completions"])
def test_a_chunked_body_over_the_limit_gets_a_413(gw: GatewayProcess, path: str) -> None:
    """Regression: on the admin routes FastAPI turned the limit's error into a bare 400."""
    response = httpx.post(f"{gw.url}{path}", content=_chunks(MAX_BODY * 2), headers=gw.headers(), timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "body_too_large"
    assert response.headers.get("x-request-id")


def test_the_trailing_slash_redirect_does_not_echo_the_host(gw: GatewayProcess) -> None:
    response = httpx.get(f"{gw.url}/api/keys/", headers={**gw.headers(), "host": "evil.example"}, timeout=10)
    assert response.status_code == 307
    assert response.headers["location"] == "/api/keys"


def test_a_body_that_stops_arriving_gets_a_408(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> None:
    """Regression: a client that sent its headers and part of its body held the connection for ever."""
    gw = gateway([{"name": "chat", "targets": [openai_target(fake_upstream)]}], body_timeout=1.0)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: lmdeck\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + gw.admin_key.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(gw) as sock:
        sock.sendall(head + b'{"model": "chat"')
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body_timeout"' in answer
