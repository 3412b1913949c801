"""A FAKE in-process provider that follows a script, for routing and pipeline tests.

It never calls anything: each call takes the next step of its script and otherwise
answers "reply from <name>" (or its ``reply``). Steps: "ok", an :class:`UpstreamError` to
raise, "hang"; for streams also "fail_after:K" (a 502 after K content chunks, or after
the finish chunk when the reply is shorter; "fail_after_first" is "fail_after:1") and
"stall_after:K" (silence after K content chunks). A stream is a role chunk, one chunk per
word, a finish chunk and a usage chunk (10 prompt tokens, plus the words of a continued
answer). With ``continues=True`` it can also continue an answer (the rest of its reply
after the final assistant message); ``requests`` keeps what each call was sent. It honours
what ``capabilities`` declares (everything unless told)::

    flaky = target("a", [UpstreamError(503, "down"), "ok"])
    healthy = target("b")
    state = route("chat", flaky, healthy, strategy="least-inflight")
    router = Router({"chat": state})
    await Dispatcher(router)(chat_context("chat"))
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.pipeline.context import RequestContext
from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.protocol.chat import Usage
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.base import UpstreamError
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities
from lmdeck.settings import RouteConfig, TargetConfig

PROMPT_TOKENS = 10

#: A step of a script: "ok", an UpstreamError to raise, "hang", "fail_after:K" or "stall_after:K" (streams).
Step = str | UpstreamError


@dataclass
class ScriptedProvider:
    """Answers "reply from <name>" or follows ``script`` (consumed one step per call)."""

    name: str
    script: list[Step] = field(default_factory=list)
    calls: int = 0
    declared: Capabilities = FORWARDS_ALL
    reply: str | None = None
    continues: bool = False
    #: The assistant text each continuation was asked to go on from.
    continued_from: list[str] = field(default_factory=list)
    requests: list[ChatCompletionRequest] = field(default_factory=list)

    @property
    def continues_answers(self) -> bool:
        return self.continues

    @property
    def text(self) -> str:
        return self.reply if self.reply is not None else f"reply from {self.name}"

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
        self.requests.append(request)
        async for chunk in self._stream(self.text, PROMPT_TOKENS):
            yield chunk

    async def stream_continuation(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        self.requests.append(request)
        begun = request.messages[-1].text()
        self.continued_from.append(begun)
        rest = self.text[len(begun) :] if self.text.startswith(begun) else self.text
        async for chunk in self._stream(rest, PROMPT_TOKENS + len(begun.split())):
            yield chunk

    def _chunk(self, delta: dict[str, object], finish: str | None = None) -> ChatCompletionChunk:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return ChatCompletionChunk(id=f"id-{self.name}", created=0, model=self.name, choices=[choice])

    async def _stream(self, text: str, prompt_tokens: int) -> AsyncIterator[ChatCompletionChunk]:
        step = self._next()
        if isinstance(step, UpstreamError):
            raise step
        if step == "hang":
            await asyncio.sleep(3600)
        action, _, count = str(step).partition(":")
        if action == "fail_after_first":
            action, count = "fail_after", "1"
        after = int(count) if count else None
        yield self._chunk({"role": "assistant", "content": ""})
        words = re.findall(r"\S+\s*", text)
        for sent, piece in enumerate(words):
            if sent == after:
                if action == "fail_after":
                    raise UpstreamError(502, "broke mid-stream")
                if action == "stall_after":
                    await asyncio.sleep(3600)
            yield self._chunk({"content": piece})
        yield self._chunk({}, "stop")
        if action == "fail_after" and after is not None and after >= len(words):
            raise UpstreamError(502, "broke mid-stream")
        usage = Usage(
            prompt_tokens=prompt_tokens, completion_tokens=len(words), total_tokens=prompt_tokens + len(words)
        )
        yield ChatCompletionChunk(id=f"id-{self.name}", created=0, model=self.name, choices=[], usage=usage)

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
    name: str,
    script: list[Step] | None = None,
    capabilities: Capabilities = FORWARDS_ALL,
    *,
    reply: str | None = None,
    continues: bool = False,
    **config: object,
) -> TargetState:
    provider = ScriptedProvider(name, script or [], declared=capabilities, reply=reply, continues=continues)
    return TargetState(TargetConfig.model_validate({"model": name, **config}), provider)


def route(name: str, *targets: TargetState, **config: object) -> RouteState:
    data = {"name": name, "targets": [t.config.model_dump() for t in targets], **config}
    return RouteState(RouteConfig.model_validate(data), list(targets))


def chat_context(route_name: str, stream: bool = False) -> RequestContext:
    body = ChatCompletionRequest.model_validate(
        {"model": route_name, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=route_name)
