"""Fixtures for the evaluation tests: a gateway in process with a fake arithmetic model.

``ArithmeticFake`` is a fake provider for tests: it never calls anything. It answers
"A + B" style questions (model ``careful``: always right; ``careless``: wrong on a
third of the questions, chosen by hash), says "I do not know" when the question has
no operator, passes what it is asked to grade (as the JSON verdict when a ``response_format``
asks for one, else with a last line ``VERDICT: PASS``) and embeds text as a bag of words.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
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
from lmdeck.evaluation import EvaluatorContext, EvaluatorRegistry, load_evaluators
from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.registry import alias_provider
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-evaluation-Tz6Mb1Xq9Wk4Hr7Nc2Vp8Lf3Js5Dg0"
ADMIN_ENV = "LMDECK_EVALUATION_TEST_ADMIN_KEY"
_QUESTION = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)")
_OPS: dict[str, Callable[[int, int], int]] = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def solve(question: str, careless: bool) -> str:
    match = _QUESTION.search(question)
    if not match:
        return "I do not know."
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    answer = _OPS[op](a, b)
    if careless and hashlib.sha256(question.encode()).digest()[0] % 3 == 0:
        answer += 1
    return str(answer)


def bag_of_words(text: str, dims: int = 32) -> list[float]:
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % dims] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class ArithmeticFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.delay = float(target.options.get("delay", 0.0))

    def _answer(self, request: ChatCompletionRequest) -> str:
        users = [m.text() for m in request.messages if m.role == "user"]
        if any(u.startswith("Grade the answer") for u in users):
            if request.response_format is not None:
                return '{"reasoning": "the answer is right", "verdict": "pass"}'
            return "The answer is right.\nVERDICT: PASS"
        return solve(users[-1] if users else "", careless=self.target.model == "careless")

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._answer(request)
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            }
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": self.target.model}
        yield ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": 0, "delta": {"content": self._answer(request)}}]}
        )
        yield ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )

    async def completions(self, request: Any) -> Any:
        raise NotImplementedError

    async def stream_completions(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        data = [{"index": i, "embedding": bag_of_words(t)} for i, t in enumerate(request.texts())]
        return EmbeddingResponse.model_validate({"data": data, "model": self.target.model})

    async def aclose(self) -> None:
        return None


def fake_providers() -> ProviderRegistry:
    providers = ProviderRegistry()
    providers.add("arith", ArithmeticFake)
    alias_provider.register(providers)
    return providers


@dataclass
class Deck:
    """A gateway in process, with a key per role (and a key of team "blue" and of team "red")."""

    gateway: Gateway
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def chat(self, who: str = "admin", headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=body, headers={**self.auth(who), **(headers or {})})

    async def call(self, method: str, path: str, who: str = "admin", **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(who), **kwargs)

    @property
    def evaluation(self) -> Any:
        return self.gateway.evaluation


def make_keys(gateway: Gateway) -> dict[str, str]:
    policy = gateway.policy
    keys = {"admin": ADMIN_KEY}
    for role in ("developer", "viewer", "inference"):
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
            "routes": [
                {"name": "calc", "targets": [{"provider": "arith", "model": "careful"}]},
                {"name": "sloppy", "targets": [{"provider": "arith", "model": "careless"}]},
                {"name": "support", "targets": ["registry:calc-bot@production"]},
                {"name": "vectors", "kind": "embeddings", "targets": [{"provider": "arith", "model": "bow"}]},
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
            yield Deck(gateway, client, make_keys(gateway))

    return start


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(make_settings()) as running:
        yield running


@pytest.fixture(scope="session")
def evaluators() -> EvaluatorRegistry:
    return load_evaluators()


@pytest.fixture
def ctx() -> EvaluatorContext:
    return EvaluatorContext()
