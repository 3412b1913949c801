"""Fixtures for the release tests: a gateway in process with a fake provider.

``EchoFake`` is a FAKE provider for tests: it never calls anything. It answers with its model's
name, the last user message and the temperature it was sent; model ``flaky`` refuses (a 500, not retried) every request whose
last user message hashes into its ``error_rate`` share (a fifth by default).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.base import UpstreamError
from lmdeck.registry import alias_provider
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-releases-Qe4Nw8Rt2Yu6Io0Pa3Sd7Fg1Hj5Kl9"
ADMIN_ENV = "LMDECK_RELEASES_TEST_ADMIN_KEY"


class EchoFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.error_rate = float(target.options.get("error_rate", 0.2))

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        users = [m.text() for m in request.messages if m.role == "user"]
        last = users[-1] if users else ""
        if self.target.model == "flaky" and hashlib.sha256(last.encode()).digest()[0] < 256 * self.error_rate:
            raise UpstreamError(500, "the fake flaky model failed", retryable=False)
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": f"{self.target.model}: {last} (temperature {request.temperature})",
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            }
        )

    async def stream_chat(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def completions(self, request: Any) -> Any:
        raise NotImplementedError

    async def stream_completions(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def embeddings(self, request: Any) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def fake_providers() -> ProviderRegistry:
    providers = ProviderRegistry()
    providers.add("echo", EchoFake)
    alias_provider.register(providers)
    return providers


@dataclass
class Deck:
    """A gateway in process with an admin key and a key per role."""

    gateway: Gateway
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def chat(self, who: str = "admin", headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=body, headers={**self.auth(who), **(headers or {})})

    async def call(self, method: str, path: str, who: str = "admin", **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(who), **kwargs)


@pytest.fixture
def release_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)

    def make(**extra: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "admin_key": {"$env": ADMIN_ENV},
            "default_routes": False,
            "release_controller": {"analysis_tick_s": None},
            "routes": [
                {"name": "chat", "targets": [{"provider": "echo", "model": "steady"}]},
                {"name": "chat-next", "targets": [{"provider": "echo", "model": "next"}]},
                {"name": "chat-flaky", "targets": [{"provider": "echo", "model": "flaky", "max_retries": 0}]},
                {"name": "support", "targets": ["registry:bot@production"]},
            ],
        }
        return Settings.model_validate({**base, **extra})

    return make


@pytest.fixture
def start_deck() -> Callable[[Settings], AbstractAsyncContextManager[Deck]]:
    @asynccontextmanager
    async def start(settings: Settings) -> AsyncIterator[Deck]:
        gateway = build_gateway(settings, providers=fake_providers(), sink=MemoryTraceSink(), announce_admin_key=False)
        async with in_process_client(create_app(gateway=gateway), timeout=30) as client:
            keys = {"admin": ADMIN_KEY}
            for role in ("developer", "viewer"):
                _, keys[role] = gateway.policy.identities.create_key(f"{role} key", role)
            gateway.policy.keys.load()
            yield Deck(gateway, client, keys)

    return start


@pytest.fixture
async def deck(
    release_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(release_settings()) as running:
        yield running
