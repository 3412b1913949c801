"""Test-local guardrails (fakes) and a guarded pipeline around an echoing terminal (no upstream at all)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lmdeck.guardrails.base import PASS, CostClass, GuardContext, Span, Stage, TooLargeToCheck, Verdict
from lmdeck.guardrails.builtin.regex import register as register_regex
from lmdeck.guardrails.config import GuardrailConfig
from lmdeck.guardrails.registry import GuardrailRegistry
from lmdeck.guardrails.service import GuardrailService
from lmdeck.guardrails.steps import steps
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.pipeline.order import build_pipeline
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class EmailFinder:
    """Finds e-mail addresses (a test stand-in for the pii built-in)."""

    name = "emails"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(self, resources: object = None) -> None:
        pass

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        spans = tuple(Span(m.start(), m.end(), "EMAIL_ADDRESS") for m in EMAIL.finditer(text))
        return Verdict("mask", 1.0, f"{len(spans)} email address(es)", spans) if spans else PASS


class Gate:
    """Waits for ``release`` before flagging (a slow, model-backed guardrail's stand-in)."""

    name = "gate"
    cost: CostClass = "slow"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(self, resources: object = None) -> None:
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        self.seen.append(text)
        await self.release.wait()
        return Verdict("flag", 0.7, "looks off-topic")


class Broken:
    """Always raises."""

    name = "broken"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(self, resources: object = None) -> None:
        pass

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        raise RuntimeError("detector crashed")


class InputOnly:
    name = "input_only"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input"})

    def __init__(self, resources: object = None) -> None:
        pass

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        return PASS


class TooLarge:
    """Declines every text as too large to check."""

    name = "too_large"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(self, resources: object = None) -> None:
        pass

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        raise TooLargeToCheck(f"{len(text)} characters, over max_chars 3")


def test_registry() -> GuardrailRegistry:
    registry = GuardrailRegistry()
    register_regex(registry)
    registry.add("emails", EmailFinder)
    registry.add("gate", Gate)
    registry.add("broken", Broken)
    registry.add("too_large", TooLarge)
    registry.add("input_only", InputOnly)
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]


@dataclass
class EchoTerminal:
    """Answers with ``reply`` or the last user message, whole or one word per chunk; keeps what it was sent."""

    reply: str | None = None
    bodies: list[BaseModel] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)

    def text(self, body: ChatCompletionRequest) -> str:
        if self.reply is not None:
            return self.reply
        return next(m.text() for m in reversed(body.messages) if m.role == "user")

    async def __call__(self, ctx: RequestContext) -> Result:
        assert isinstance(ctx.body, ChatCompletionRequest)
        self.bodies.append(ctx.body)
        self.routes.append(ctx.route_name)
        ctx.trace.route = ctx.route_name
        text = self.text(ctx.body)
        if ctx.stream:
            return Streamed(self._chunks(text))
        message = {"role": "assistant", "content": text}
        return Completed(
            ChatCompletionResponse.model_validate(
                {"id": "x", "created": 0, "model": "m", "choices": [{"message": message, "finish_reason": "stop"}]}
            )
        )

    async def _chunks(self, text: str) -> AsyncIterator[BaseModel]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id="x", created=0, model="m", choices=[{"index": 0, "delta": delta, "finish_reason": finish}]
            )

        yield chunk({"role": "assistant", "content": ""})
        for piece in re.findall(r"\S+\s*", text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")


@dataclass
class Guarded:
    """A pipeline of the guardrail steps around an :class:`EchoTerminal`."""

    settings: Settings
    service: GuardrailService
    terminal: EchoTerminal

    async def run(
        self,
        content: str,
        *,
        route: str = "support",
        stream: bool = False,
        principal: Principal | None = None,
        tags: list[str] | None = None,
    ) -> tuple[RequestContext, Result]:
        body = ChatCompletionRequest.model_validate(
            {"model": route, "messages": [{"role": "user", "content": content}], "stream": stream, "tags": tags}
        )
        ctx = RequestContext(
            kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=route, principal=principal
        )
        routes = {r.name: r for r in self.settings.routes}
        pipeline = build_pipeline(
            steps(self.service, lambda c, name: None, lambda name: routes[name].fallbacks if name in routes else []),
            terminal=self.terminal,
        )
        return ctx, await pipeline.run(ctx)

    async def collect(self, result: Result) -> tuple[str, APIError | None]:
        assert isinstance(result, Streamed)
        text: list[str] = []
        try:
            async for chunk in result.chunks:
                for choice in getattr(chunk, "choices", []):
                    text.append(choice.get("delta", {}).get("content") or "")
        except APIError as exc:
            return "".join(text), exc
        return "".join(text), None


def guarded(config: dict[str, Any], reply: str | None = None) -> Guarded:
    settings = Settings.model_validate({"default_routes": False, **config})
    built = GuardrailConfig.build(settings, test_registry(), resources=_no_resources())
    routes = {r.name: r for r in settings.routes}
    service = GuardrailService(built, routes.get)
    return Guarded(settings, service, EchoTerminal(reply))


def _no_resources() -> Any:
    from lmdeck.guardrails.base import GuardResources

    return GuardResources()
