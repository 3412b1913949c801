"""Fixtures for the registry tests: a migrated store, a gateway in process, and a fake provider.

``FakeModelProvider`` is a fake for tests: it never calls anything and answers
with JSON naming the upstream model it was built for, the request's
temperature and the messages it received, which is how a test sees which
model version served a request and what a rendered prompt looked like.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.db import Database
from lmdeck.protocol import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.registry import alias_provider
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-registry-Nd4Gz7Wq1Kc8Tx5Rb2Mv9Jh6Lf3Ps0A"
ADMIN_ENV = "LMDECK_REGISTRY_TEST_ADMIN_KEY"


class FakeModelProvider:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        if target.api_key is not None:
            target.api_key.resolve()  # as a real provider does, failing when the secret is missing

    def _content(self, request: ChatCompletionRequest) -> str:
        return json.dumps(
            {
                "model": self.target.model,
                "temperature": request.temperature,
                "messages": [{"role": m.role, "content": m.text()} for m in request.messages],
            }
        )

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self._content(request)}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": self.target.model}
        content = self._content(request)
        for piece in (content[: len(content) // 2], content[len(content) // 2 :]):
            yield ChatCompletionChunk.model_validate({**base, "choices": [{"index": 0, "delta": {"content": piece}}]})
        yield ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
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


def fake_providers() -> ProviderRegistry:
    providers = ProviderRegistry()
    providers.add("fake", FakeModelProvider)
    alias_provider.register(providers)
    return providers


@dataclass
class Deck:
    """A running gateway in process, with an API key per role."""

    gateway: Gateway
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def sink(self) -> MemoryTraceSink:
        assert isinstance(self.gateway.sink, MemoryTraceSink)
        return self.gateway.sink

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[role]}"}

    async def chat(self, role: str = "admin", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=body, headers=self.auth(role))


def role_keys(gateway: Gateway) -> dict[str, str]:
    policy = gateway.policy
    keys = {"admin": ADMIN_KEY}
    for role in ("developer", "viewer", "inference"):
        _, secret = policy.identities.create_key(f"{role} key", role)
        keys[role] = secret
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
            "registry": {"poll_interval": 0.1},
            "routes": [
                {"name": "support", "targets": ["registry:support-bot@production"]},
                {"name": "plain", "targets": [{"provider": "fake", "model": "plain-model"}]},
            ],
        }
        return Settings.model_validate({**base, **extra})

    return make


@pytest.fixture
def start_deck() -> Callable[[Settings], AbstractAsyncContextManager[Deck]]:
    @asynccontextmanager
    async def start(settings: Settings) -> AsyncIterator[Deck]:
        gateway = build_gateway(settings, providers=fake_providers(), sink=MemoryTraceSink(), announce_admin_key=False)
        async with in_process_client(create_app(gateway=gateway)) as client:
            yield Deck(gateway, client, role_keys(gateway))

    return start


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(make_settings()) as running:
        yield running


@dataclass
class LiveServer:
    """``lmdeck`` served by uvicorn on a loopback port, in a thread."""

    base_url: str
    gateway: Gateway
    keys: dict[str, str]


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[LiveServer]:
    gateway = build_gateway(settings, providers=fake_providers(), sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(gateway=gateway)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a server starting on a loaded machine
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", gateway, role_keys(gateway))
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def live_server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with serve_in_thread(make_settings()) as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")
    database.migrate()
    yield database
    database.dispose()


#: Teams ``team_blue`` and ``team_red`` of the ``teams`` deck.
TEAMS = ("blue", "red")


def add_team_keys(deck: Deck) -> None:
    """Keys ``blue-developer``, ``red-viewer``, ``blue-inference``... of teams ``team_blue`` and ``team_red``."""
    policy = deck.gateway.policy
    for team in TEAMS:
        created = policy.identities.create_team(team, team_id=f"team_{team}")
        for role in ("developer", "viewer", "inference"):
            _, deck.keys[f"{team}-{role}"] = policy.identities.create_key(f"{team} {role}", role, team_id=created.id)
    policy.keys.load()


@pytest.fixture
async def teams(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    """A deck with the role keys plus keys of teams blue and red; route ``blue-chat`` and
    ``blue-bot-route`` (following ``blue-bot@staging``) name team blue as their owner."""
    routes = [
        {"name": "support", "targets": ["registry:support-bot@production"]},
        {"name": "plain", "targets": [{"provider": "fake", "model": "plain-model"}]},
        {"name": "blue-chat", "team": "blue", "targets": [{"provider": "fake", "model": "blue-model"}]},
        {"name": "blue-bot-route", "team": "blue", "targets": ["registry:blue-bot@staging"]},
    ]
    async with start_deck(make_settings(routes=routes)) as deck:
        add_team_keys(deck)
        yield deck
