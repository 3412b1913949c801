"""Local models load in the background at start-up: readiness says which are loading, requests wait for them.

The load is held on a gate here, so every check sees the gateway while the model is still loading,
whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.local.engine import LocalEngine
from lmdeck.local.runtime import LocalRuntime
from lmdeck.settings import Settings
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_RUNTIME_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-runtime-Wq3Zt8Kd5Hn1Vx6Rb2Mc9Lf4Gp7Js0E"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
ASK = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class Gate:
    """Holds every engine load until opened; counts the loads."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.loads = 0
        self.fail_next = False


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    original = LocalRuntime._load_engine

    def load(runtime: LocalRuntime, name: str, quantize: str) -> LocalEngine:
        held.loads += 1
        assert held.open.wait(60), "the test never opened the gate"
        if held.fail_next:
            held.fail_next = False
            raise OSError("the checkpoint could not be read")
        return original(runtime, name, quantize)

    monkeypatch.setattr(LocalRuntime, "_load_engine", load)
    yield held
    held.open.set()


async def start(model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, timeout: float = 60) -> Gateway:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "admin_key": {"$env": ADMIN_ENV},
            "default_routes": False,
            "routes": [{"name": "tiny", "targets": [{"provider": "local", "model": "tiny", "timeout": timeout}]}],
            "local": {"model_dir": str(model_dir)},
        }
    )
    gw = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    await gw.start()
    return gw


def client(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(gateway=gw)), base_url="http://lmdeck.test")


async def test_ready_names_the_loading_model_and_a_request_waits_for_it(
    gate: Gate, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tiny_model_dir.parent, tmp_path, monkeypatch)
    try:
        async with client(gw) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["loading"] == ["tiny"]
            assert "local model 'tiny' is loading" in ready.json()["problems"]
            waiting = asyncio.create_task(http.post("/v1/chat/completions", json=ASK, headers=AUTH))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # it cannot be answered before the model exists
            gate.open.set()
            answered = await waiting
            assert answered.status_code == 200, answered.text
            assert answered.json()["usage"]["completion_tokens"] == 2
            ready = await http.get("/health/ready")
            assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        assert gate.loads == 1  # started once, at start-up: the waiting request did not start another
    finally:
        await gw.stop()


async def test_a_request_that_outwaits_its_timeout_hears_the_model_is_loading(
    gate: Gate, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tiny_model_dir.parent, tmp_path, monkeypatch, timeout=0.3)
    try:
        async with client(gw) as http:
            early = await http.post("/v1/chat/completions", json=ASK, headers=AUTH)
            assert early.status_code == 503
            assert early.json()["error"]["code"] == "model_loading"
            assert "still loading" in early.json()["error"]["message"]
            assert early.headers["retry-after"] == "5"
            # Warming up is no failure of the target: its breaker stays closed.
            assert gw.router.breaker_states() == {"local:tiny": "closed"}
            gate.open.set()
            deadline = time.monotonic() + 120  # generous: a loaded machine only makes the load longer
            while gw.router.loading() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            later = await http.post("/v1/chat/completions", json=ASK, headers=AUTH)
            assert later.status_code == 200, later.text
    finally:
        await gw.stop()


async def test_a_failed_load_is_retried_by_the_next_request(
    gate: Gate, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate.fail_next = True
    gate.open.set()
    gw = await start(tiny_model_dir.parent, tmp_path, monkeypatch)
    try:
        async with client(gw) as http:
            first = await http.post("/v1/chat/completions", json=ASK, headers=AUTH)
            if first.status_code == 503:  # it arrived while the failing load was still under way
                assert "failed to load" in first.json()["error"]["message"]
            else:
                assert first.status_code == 200  # the start-up load had already failed: this one loaded again
            second = await http.post("/v1/chat/completions", json=ASK, headers=AUTH)
            assert second.status_code == 200, second.text
            assert gate.loads == 2
            assert (await http.get("/health/ready")).status_code == 200
    finally:
        await gw.stop()
