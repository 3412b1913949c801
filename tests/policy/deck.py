"""An in-process gateway with a fake provider, for the access-control and cost tests.

``FakeMeteredProvider`` is a fake: it answers every call with "ok" and the token
usage its target's ``options`` say (``prompt_tokens``, ``completion_tokens``,
``"max"`` for the request's max_tokens), after ``delay`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.policy.services import PolicyServices
from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-policy-Fb9Lw2Kt6Xn4Rq8Mz1Cv5Hj3Pd7Ys0E"
ADMIN_ENV = "LMDECK_TEST_POLICY_ADMIN_KEY"
#: Dollars per 1M tokens for the fake model: 1000 in, 2000 out, 100 a cached token read
#: (a token costs $0.001 / $0.002 / $0.0001).
FAKE_PRICE = {"input": 1000.0, "output": 2000.0, "cached_input": 100.0}
_ids = itertools.count()


class FakeMeteredProvider:
    """A fake upstream: fixed answer, configurable usage and delay; remembers its resolved api key."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.options = dict(target.options)
        self.api_key = target.api_key.resolve() if target.api_key is not None else None

    def _usage(self, max_tokens: int | None) -> Usage:
        prompt = int(self.options.get("prompt_tokens", 10))
        completion = self.options.get("completion_tokens", 5)
        completion = (max_tokens or 16) if completion == "max" else int(completion)
        cached = int(self.options.get("cached_tokens", 0))
        details = {"prompt_tokens_details": {"cached_tokens": cached}} if cached else {}
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, **details)

    async def _wait(self) -> None:
        delay = float(self.options.get("delay", 0.0))
        await asyncio.sleep(delay)

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        await self._wait()
        return ChatCompletionResponse(
            id=f"fake-{next(_ids)}",
            created=0,
            model=self.target.model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            usage=self._usage(request.token_limit()),
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        await self._wait()
        ident = f"fake-{next(_ids)}"
        for piece in ("o", "k"):
            yield ChatCompletionChunk(
                id=ident, created=0, model=self.target.model, choices=[{"index": 0, "delta": {"content": piece}}]
            )
        if not self.options.get("no_stream_usage"):
            yield ChatCompletionChunk(
                id=ident, created=0, model=self.target.model, choices=[], usage=self._usage(request.token_limit())
            )

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        await self._wait()
        return CompletionResponse(
            id=f"fake-{next(_ids)}",
            created=0,
            model=self.target.model,
            choices=[{"index": 0, "text": "ok", "finish_reason": "stop"}],
            usage=self._usage(request.token_limit()),
        )

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        yield await self.completions(request)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return EmbeddingResponse(data=[{"index": 0, "embedding": [0.0, 1.0]}], model=self.target.model)

    async def aclose(self) -> None:
        return None


def fake_providers() -> ProviderRegistry:
    registry = ProviderRegistry()
    registry.add("fake", FakeMeteredProvider)
    return registry


def fake_route(name: str = "fake-gpt", model: str = "fake-gpt-model", **options: Any) -> dict[str, Any]:
    return {"name": name, "targets": [{"provider": "fake", "model": model, "options": options}]}


def policy_settings(tmp_path: Path, routes: list[dict[str, Any]] | None = None, **extra: Any) -> Settings:
    policy = {"pricing": {"fake-gpt-model": FAKE_PRICE}} | extra.pop("policy", {})
    return Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "routes": routes if routes is not None else [fake_route()],
            "policy": policy,
            **extra,
        }
    )


class Deck:
    """A started in-process gateway, its policy services, its trace sink and an HTTP client."""

    def __init__(self, app: FastAPI, http: httpx.AsyncClient, sink: MemoryTraceSink) -> None:
        self.app = app
        self.http = http
        self.sink = sink

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    @property
    def policy(self) -> PolicyServices:
        policy: PolicyServices = self.gateway.policy
        return policy

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=auth(ADMIN_KEY), **kwargs)

    async def new_key(self, **fields: Any) -> dict[str, Any]:
        response = await self.admin("POST", "/api/keys", json={"name": "test", **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def chat(self, key: str, model: str = "fake-gpt", **body: Any) -> httpx.Response:
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
        return await self.http.post("/v1/chat/completions", json=payload, headers=auth(key))


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


DeckFactory = Callable[..., Awaitable[Deck]]


@asynccontextmanager
async def started_deck(settings: Settings) -> AsyncIterator[Deck]:
    sink = MemoryTraceSink()
    gateway = build_gateway(settings, sink=sink, providers=fake_providers(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    async with in_process_client(app) as http:
        yield Deck(app, http, sink)


class ServedDeck:
    """A gateway with the fake provider behind a real uvicorn server on 127.0.0.1."""

    def __init__(self, url: str, gateway: Gateway, sink: MemoryTraceSink) -> None:
        self.url = url
        self.gateway = gateway
        self.sink = sink

    @property
    def policy(self) -> PolicyServices:
        policy: PolicyServices = self.gateway.policy
        return policy


@asynccontextmanager
async def served_deck(settings: Settings) -> AsyncIterator[ServedDeck]:
    import socket
    import threading

    import uvicorn

    sink = MemoryTraceSink()
    gateway = build_gateway(settings, sink=sink, providers=fake_providers(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", backlog=1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="policy-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120  # generous: a server starting on a loaded machine
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert server.started, "the test server did not start"
        yield ServedDeck(f"http://127.0.0.1:{port}", gateway, sink)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
