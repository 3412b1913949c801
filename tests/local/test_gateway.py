"""The local provider behind the gateway: a full queue is the caller's 429, a client that leaves frees its row."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.local.engine import LocalEngine
from lmdeck.local.random_model import write_random_model
from lmdeck.providers.local import LocalProvider
from lmdeck.settings import Settings
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_LOCAL_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-local-Kp7Vx2Qm9Rt4Wb8Nz3Lc6Hj1Fd5Gs0Y"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def settings_for(model_dir: Path, data_dir: Path, **local: object) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "admin_key": {"$env": ADMIN_ENV},
            "default_routes": False,
            "routes": [{"name": "tiny", "targets": [{"provider": "local", "model": "tiny"}]}],
            "local": {"model_dir": str(model_dir), **local},
        }
    )


def engine_of(gateway: Gateway) -> LocalEngine | None:
    route = gateway.router.get("tiny")
    assert route is not None
    provider = route.targets[0].provider
    assert isinstance(provider, LocalProvider)
    return provider.runtime.loaded_engine("tiny")


def ask(max_tokens: int, **extra: object) -> dict[str, object]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens, **extra}


@pytest.fixture
async def gateway(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = settings_for(tiny_model_dir.parent, tmp_path, max_batch_size=1, max_queue=1)
    gw = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def test_a_full_queue_is_the_callers_429_and_never_opens_the_breaker(gateway: Gateway) -> None:
    """Regression: a full queue answered 503, which counted as a failure of the model: five of them opened
    its circuit breaker and every caller got 503 circuit_open for the breaker's reset time."""
    app = create_app(gateway=gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmdeck.test") as http:
        warm = await http.post("/v1/chat/completions", json=ask(1), headers=AUTH)
        assert warm.status_code == 200
        engine = engine_of(gateway)
        assert engine is not None
        engine.pause()
        queued = asyncio.create_task(http.post("/v1/chat/completions", json=ask(3), headers=AUTH))
        deadline = time.monotonic() + 60  # generous: a loaded machine only makes the wait longer
        while engine.stats.waiting != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert engine.stats.waiting == 1
        threshold = gateway.settings.breaker.failure_threshold
        for _ in range(threshold + 1):
            refused = await http.post("/v1/chat/completions", json=ask(3), headers=AUTH)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            error = refused.json()["error"]
            assert (error["code"], error["type"]) == ("queue_full", "rate_limit_error")
            assert "local.max_queue=1" in error["message"]
        assert gateway.router.breaker_states() == {"local:tiny": "closed"}
        engine.resume()
        done = await queued
        assert done.status_code == 200
        assert done.json()["usage"]["completion_tokens"] == 3
        after = await http.post("/v1/chat/completions", json=ask(2), headers=AUTH)
        assert after.status_code == 200, after.text  # not circuit_open


async def test_bad_input_gets_openai_shaped_4xx(gateway: Gateway) -> None:
    app = create_app(gateway=gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmdeck.test") as http:
        too_long = await http.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 1000}]},
            headers=AUTH,
        )
        assert too_long.status_code == 400
        assert "shorten the prompt" in too_long.json()["error"]["message"]
        stream_n = await http.post("/v1/chat/completions", json=ask(3, n=2, stream=True), headers=AUTH)
        assert stream_n.status_code == 400
        embed = await http.post("/v1/embeddings", json={"model": "tiny", "input": "x"}, headers=AUTH)
        assert embed.status_code == 400
        assert embed.json()["error"]["code"] == "unsupported_endpoint"


@dataclass
class LiveServer:
    base_url: str
    gateway: Gateway


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    # A long context, so that the request below could run for thousands of tokens if nobody cut it short.
    write_random_model(tmp_path / "models" / "tiny", context=8192)
    gw = build_gateway(
        settings_for(tmp_path / "models", tmp_path, max_batch_size=2),
        sink=MemoryTraceSink(),
        announce_admin_key=False,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(gateway=gw), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", gw)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_client_that_disconnects_frees_its_row(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=ask(8000, stream=True), headers=AUTH) as response:
            assert response.status_code == 200
            events = 0
            for line in response.iter_lines():
                events += line.startswith("data: ")
                if events == 3:
                    break
        engine = engine_of(live.gateway)
        assert engine is not None
        deadline = time.monotonic() + 60
        while engine.stats.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats.cancelled == 1
        assert engine.stats.finished == 0  # it was cut short, not run to its 8000 tokens
        assert engine.stats.running == 0
        after = http.post("/v1/chat/completions", json=ask(2), headers=AUTH)
        assert after.status_code == 200
