"""A FAKE in-process provider that follows a script, for routing and pipeline tests.

It never calls anything: each call takes the next step of its script ("ok", an
:class:`UpstreamError` to raise, "hang", or "fail_after_first" for streams) and
otherwise answers "reply from <name>". It honours what ``capabilities`` declares (everything
unless told)::

    flaky = target("a", [UpstreamError(503, "down"), "ok"])
    healthy = target("b")
    state = route("chat", flaky, healthy, strategy="least-inflight")
    router = Router({"chat": state})
    await Dispatcher(router)(chat_context("chat"))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lmdeck.gateway.context import RequestContext
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.providers.base import UpstreamError
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities
from lmdeck.settings import RouteConfig, TargetConfig
from lmdeck.tracing import TraceRecord

#: A step of a script: "ok", an UpstreamError to raise, "hang", or "fail_after_first" (streams).
Step = str | UpstreamError


@dataclass
class ScriptedProvider:
    """Answers "reply from <name>" or follows ``script`` (consumed one step per call)."""

    name: str
    script: list[Step] = field(default_factory=list)
    calls: int = 0
    declared: Capabilities = FORWARDS_ALL

    def _next(self) -> Step:
        self.calls += 1
        return self.script.pop(0) if self.script else "ok"

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        step = self._next()
        if isinstance(step, UpstreamError):
            raise step
        if step == "hang":
            await asyncio.sleep(3600)
        message = {"role": "assistant", "content": f"reply from {self.name}"}
        return ChatCompletionResponse.model_validate(
            {"id": "x", "created": 0, "model": self.name, "choices": [{"message": message}]}
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        step = self._next()
        if isinstance(step, UpstreamError):
            raise step
        if step == "hang":
            await asyncio.sleep(3600)
        for word in ("reply", "from", self.name):
            yield ChatCompletionChunk(
                id="x", created=0, model=self.name, choices=[{"index": 0, "delta": {"content": word}}]
            )
            if step == "fail_after_first":
                raise UpstreamError(502, "broke mid-stream")

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        raise NotImplementedError

    def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        raise NotImplementedError

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise NotImplementedError

    def capabilities(self) -> Capabilities:
        return self.declared

    async def aclose(self) -> None:
        return None


def target(
    name: str, script: list[Step] | None = None, capabilities: Capabilities = FORWARDS_ALL, **config: object
) -> TargetState:
    provider = ScriptedProvider(name, script or [], declared=capabilities)
    return TargetState(TargetConfig.model_validate({"model": name, **config}), provider)


def route(name: str, *targets: TargetState, **config: object) -> RouteState:
    data = {"name": name, "targets": [t.config.model_dump() for t in targets], **config}
    return RouteState(RouteConfig.model_validate(data), list(targets))


def chat_context(route_name: str, stream: bool = False) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": route_name, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=route_name)
