"""Retries, fallbacks, breakers and deadlines through a real ``lmdeck serve`` and real fake upstreams."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import (
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    fake_upstream_process,
    free_port,
    openai_target,
)

USER = [{"role": "user", "content": "are you there"}]
#: Nothing listens here: connections are refused.
DEAD_URL = f"http://127.0.0.1:{free_port()}/v1"
#: Seconds an open breaker stays open: far more than the few requests that must see it open take on a
#: loaded machine, so it is still open when they come whatever the machine's speed.
BREAKER_RESET_S = 10.0


@pytest.fixture(scope="module")
def second_upstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    with fake_upstream_process(log_dir=tmp_path_factory.mktemp("second-fake")) as fake:
        yield fake


@pytest.fixture
def second_upstream(second_upstream_server: FakeUpstreamProcess) -> FakeUpstreamProcess:
    second_upstream_server.reset()
    return second_upstream_server


#: One route per scenario; each names its own upstream model, so each has its own target and breaker.
def scenario_routes(fake: FakeUpstreamProcess, second: FakeUpstreamProcess, dead_url: str) -> list[dict[str, Any]]:
    return [
        # A stream is held for 3 content chunks; the hold time is long so a loaded machine cannot end it first.
        {
            "name": "chat",
            "stream_commit": {"chunks": 3, "max_hold_ms": 5000},
            "targets": [openai_target(fake, "m-chat")],
        },
        {"name": "short", "targets": [openai_target(fake, "m-short", max_retries=1)]},
        {
            "name": "dead-first",
            "targets": [
                {"provider": "openai", "model": "m-gone", "base_url": dead_url, "weight": 1},
                openai_target(fake, "m-spare", weight=0),
            ],
        },
        {
            "name": "flaky-first",
            "targets": [
                openai_target(second, "m-flaky", weight=1, max_retries=1),
                openai_target(fake, "m-steady", weight=0),
            ],
        },
        {"name": "primary", "targets": [openai_target(second, "m-primary", max_retries=0)], "fallbacks": ["backup"]},
        {"name": "backup", "targets": [openai_target(fake, "m-backup")]},
        {"name": "fragile", "targets": [openai_target(fake, "m-fragile", max_retries=0)]},
        {"name": "ttft", "targets": [openai_target(fake, "m-ttft", ttft_timeout=0.3, max_retries=0)]},
        # The retry must bring its first token within the deadline: generous, so a loaded machine still does.
        {"name": "ttft-retry", "targets": [openai_target(fake, "m-ttft-retry", ttft_timeout=5.0, max_retries=1)]},
        {"name": "slow", "targets": [openai_target(fake, "m-slow", timeout=0.3, max_retries=0)]},
    ]


@pytest.fixture
def gw(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess, second_upstream: FakeUpstreamProcess
) -> GatewayProcess:
    routes = scenario_routes(fake_upstream, second_upstream, DEAD_URL)
    return gateway(routes, breaker={"failure_threshold": 2, "reset_timeout": BREAKER_RESET_S})


def client_of(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=15)


def ask(gw: GatewayProcess, model: str = "chat", **extra: Any) -> tuple[str, str]:
    """Send one chat request; its reply text and request id."""
    request_id = f"res-{uuid.uuid4().hex}"
    reply = client_of(gw).chat.completions.create(
        model=model, messages=USER, extra_headers={"x-request-id": request_id}, **extra
    )
    return reply.choices[0].message.content or "", request_id


def target_id(fake: FakeUpstreamProcess, model: str) -> str:
    return f"openai:{model}@{fake.base_url}"


def test_retry_on_500(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=[500, 200])
    text, request_id = ask(gw)
    assert text == "are you there"
    assert fake_upstream.stats()["outcomes"] == {"error:500": 1, "answer": 1}
    trace = gw.trace(request_id)
    assert trace["retries"] == 1 and trace["status_code"] == 200
    assert [e["status"] for e in trace["metadata"]["upstream_errors"]] == [500]


def test_retry_on_429_waits_for_retry_after(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=["429:1", 200])
    began = time.monotonic()
    text, _ = ask(gw)
    assert text == "are you there" and fake_upstream.count() == 2
    # A lower bound only: the gateway must not retry before the upstream's Retry-After.
    assert time.monotonic() - began >= 0.95


def test_retry_after_connection_reset(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=["reset", 200])
    assert ask(gw)[0] == "are you there"
    assert fake_upstream.stats()["outcomes"] == {"reset": 1, "answer": 1}


def test_retries_run_out(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=[429, 429, 429])
    with pytest.raises(openai.RateLimitError):
        ask(gw, "short")
    assert fake_upstream.count() == 2
    fake_upstream.configure(script=[503, 503, 503])
    with pytest.raises(openai.APIStatusError) as info:
        ask(gw, "short")
    assert info.value.status_code == 502 and fake_upstream.count() == 4


def test_fallback_to_the_second_target(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, second_upstream: FakeUpstreamProcess
) -> None:
    text, request_id = ask(gw, "dead-first")
    assert text == "are you there" and fake_upstream.count() == 1
    trace = gw.trace(request_id)
    assert trace["target"] == target_id(fake_upstream, "m-spare") and trace["retries"] == 1
    assert "cannot connect" in trace["metadata"]["upstream_errors"][0]["error"]

    second_upstream.configure(script=[500])
    assert ask(gw, "flaky-first")[0] == "are you there"
    assert second_upstream.count() == 1 and fake_upstream.count() == 2


def test_fallback_to_another_route(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, second_upstream: FakeUpstreamProcess
) -> None:
    second_upstream.configure(script=[502])
    text, request_id = ask(gw, "primary")
    assert text == "are you there"
    assert fake_upstream.requests()[-1]["body"]["model"] == "m-backup"
    trace = gw.trace(request_id)
    assert trace["fallback_used"] is True and trace["route"] == "primary"
    assert trace["metadata"]["served_by_route"] == "backup"


def breaker_line(gw: GatewayProcess, fake: FakeUpstreamProcess, model: str, state: str) -> bool:
    metrics = httpx.get(f"{gw.url}/metrics", timeout=30).text
    return f'lmdeck_breaker_state{{state="{state}",target="{target_id(fake, model)}"}} 1.0' in metrics


def test_breaker_opens_then_recovers_half_open(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=[500, 500])
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(gw, "fragile")
    with pytest.raises(openai.APIStatusError) as info:
        ask(gw, "fragile")
    assert info.value.status_code == 503 and info.value.code == "circuit_open"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= BREAKER_RESET_S  # until the probe
    assert fake_upstream.count() == 2, "an open breaker keeps requests away from the upstream"
    assert breaker_line(gw, fake_upstream, "m-fragile", "open")

    # After the reset timeout the breaker half-opens: waited for by its state, not by a sleep.
    deadline = time.monotonic() + BREAKER_RESET_S + 60
    while not breaker_line(gw, fake_upstream, "m-fragile", "half_open"):
        assert time.monotonic() < deadline, "the open breaker never half-opened"
        time.sleep(0.2)
    assert fake_upstream.count() == 2
    assert ask(gw, "fragile")[0] == "are you there"
    assert fake_upstream.count() == 3
    assert breaker_line(gw, fake_upstream, "m-fragile", "closed")


def test_ttft_timeout(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=["hang_before_first_token"])
    with pytest.raises(openai.APIStatusError) as info:
        list(client_of(gw).chat.completions.create(model="ttft", messages=USER, stream=True))
    assert info.value.status_code == 504 and info.value.code == "ttft_timeout"


def test_ttft_timeout_is_retried_before_the_first_token(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=["hang_before_first_token"])
    chunks = list(client_of(gw).chat.completions.create(model="ttft-retry", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "are you there"
    assert fake_upstream.count() == 2


def test_whole_call_timeout(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    fake_upstream.configure(script=["hang"])
    with pytest.raises(openai.APIStatusError) as info:
        ask(gw, "slow")
    assert info.value.status_code == 504 and info.value.code == "timeout"


def test_a_stream_broken_before_its_commit_point_is_retried_unseen(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    # The first token is held back (the route commits a stream after 3 content chunks), so the
    # drop right after it is retried and the client sees one clean stream.
    fake_upstream.configure(script=["drop_mid_stream:1"])
    chunks = list(client_of(gw).chat.completions.create(model="chat", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "are you there"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert fake_upstream.count() == 2
