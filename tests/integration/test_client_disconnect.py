"""A client that leaves before its answer is ready cancels the upstream call, and its trace says 499.

Regression: a whole (non-streamed) answer ran to its end after the client had gone, still
costing the upstream's tokens, and its trace said 200.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

#: The fake upstream takes this long to answer: far longer than any test waits.
SLOW_MS = 600_000


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    # The target's own timeout is longer than the fake's delay: only the client leaving can end the call.
    target = openai_target(fake_upstream, timeout=SLOW_MS / 1000 + 60, ttft_timeout=SLOW_MS / 1000 + 60)
    return gateway([{"name": "slow", "targets": [target]}])


def send_and_leave(gw: GatewayProcess, fake: FakeUpstreamProcess, body: dict[str, object], request_id: str) -> None:
    raw = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: lmdeck\r\nAuthorization: Bearer {gw.admin_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\nX-Request-Id: {request_id}\r\n\r\n"
    ).encode()
    with socket.create_connection((gw.host, gw.port), timeout=30) as sock:
        sock.sendall(head + raw)
        wait_for(lambda: fake.stats()["in_flight"] >= 1, "the upstream call to start")
    # The socket is closed: the client has gone.


@pytest.mark.parametrize("stream", [False, True], ids=["whole answer", "stream before its first token"])
def test_a_client_that_leaves_cancels_the_upstream_call_and_the_trace_says_499(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, stream: bool
) -> None:
    fake_upstream.configure(latency_ms=SLOW_MS)
    request_id = f"leaves-{uuid.uuid4().hex}"
    body = {"model": "slow", "messages": [{"role": "user", "content": "take your time"}], "stream": stream}
    send_and_leave(gw, fake_upstream, body, request_id)

    # The upstream sees its connection closed long before it would have answered.
    wait_for(lambda: fake_upstream.stats()["disconnects"] == 1, "the upstream to see the call cancelled")
    wait_for(lambda: fake_upstream.stats()["in_flight"] == 0, "the upstream call to end")
    trace = gw.trace(request_id)
    assert trace["status_code"] == 499, trace
    assert trace["error_type"] == "client_disconnected"

    fake_upstream.configure(latency_ms=0)
    again = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "slow", "messages": [{"role": "user", "content": "still here"}]},
        headers=gw.headers(),
        timeout=30,
    )
    assert again.status_code == 200 and again.json()["choices"][0]["message"]["content"] == "still here"
