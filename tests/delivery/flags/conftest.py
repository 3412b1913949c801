"""Fixtures for the flag tests: a gateway in process whose routes answer with an echo fake.

``EchoFake`` is a fake provider for tests: it never calls anything; it answers
``"<target model> t=<temperature>: <the last user message>"``, so a test sees which route
served a request, with which parameters and what the rendered prompt said.
"""

from __future__ import annotations

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
from lmdeck.protocol import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-flags-Qm4Vx8Lr2Tc6Hw9Kp3Zn7Bd5Fj1Sy0"
ADMIN_ENV = "LMDECK_FLAGS_TEST_ADMIN_KEY"


class EchoFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target

    def _answer(self, request: ChatCompletionRequest) -> str:
        users = [m.text() for m in request.messages if m.role == "user"]
        return f"{self.target.model} t={request.temperature}: {users[-1] if users else ''}"

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-echo",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self._answer(request)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": self.target.model}
        yield ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": 0, "delta": {"content": self._answer(request)}, "finish_reason": "stop"}]}
        )

    async def completions(self, request: Any) -> Any:
        raise NotImplementedError

    async def stream_completions(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def embeddings(self, request: Any) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


ROUTES: list[dict[str, Any]] = [
    {
        "name": "support",
        "team": "blue",
        "targets": [{"provider": "echo", "model": "support-v1"}],
        "flags": [
            {"flag": "support-v2", "equals": True, "route": "support-next"},
            {"flag": "tone", "equals": "terse", "params": {"temperature": 0.1}},
        ],
    },
    {"name": "support-next", "team": "blue", "targets": [{"provider": "echo", "model": "support-v2"}]},
    {"name": "ops", "targets": [{"provider": "echo", "model": "ops-v1"}]},
]


@dataclass
class FlagDeck:
    """A gateway in process with a key per role, and a developer and an app key of teams blue and red."""

    gateway: Gateway
    client: httpx.AsyncClient
    sink: MemoryTraceSink
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def call(self, method: str, path: str, who: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def chat(self, who: str = "admin", headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        return await self.call("POST", "/v1/chat/completions", who, json=body, headers=headers or {})

    async def answer(self, who: str = "admin", **body: Any) -> str:
        r = await self.chat(who, **body)
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])


def _keys(gateway: Gateway) -> dict[str, str]:
    policy = gateway.policy
    keys = {"admin": ADMIN_KEY}
    for role in ("developer", "viewer"):
        _, keys[role] = policy.identities.create_key(f"{role} key", role)
    for team in ("blue", "red"):
        created = policy.identities.create_team(team, team_id=f"team_{team}")
        _, keys[f"{team}-app"] = policy.identities.create_key(f"{team} app", "inference", team_id=created.id)
        _, keys[f"{team}-dev"] = policy.identities.create_key(f"{team} dev", "developer", team_id=created.id)
    policy.keys.load()
    return keys


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)

    def make(**extra: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "admin_key": {"$env": ADMIN_ENV},
            "default_routes": False,
            "registry": {"poll_interval": 0.2},
            "routes": ROUTES,
        }
        return Settings.model_validate({**base, **extra})

    return make


@pytest.fixture
def start_deck() -> Callable[[Settings], AbstractAsyncContextManager[FlagDeck]]:
    @asynccontextmanager
    async def start(settings: Settings) -> AsyncIterator[FlagDeck]:
        providers = ProviderRegistry()
        providers.add("echo", EchoFake)
        sink = MemoryTraceSink()
        gateway = build_gateway(settings, providers=providers, sink=sink, announce_admin_key=False)
        async with in_process_client(create_app(gateway=gateway), timeout=30) as client:
            yield FlagDeck(gateway, client, sink, _keys(gateway))

    return start


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[FlagDeck]]
) -> AsyncIterator[FlagDeck]:
    async with start_deck(make_settings()) as running:
        yield running
