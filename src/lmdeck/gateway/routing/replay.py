"""A whole chat answer sent as a stream: what a client that streams gets from an answer held back.

A tiered strategy judges a cheaper target's answer whole before the client may see it; when
the client asked for a stream, the kept answer is replayed as OpenAI's chunks: per choice, one
chunk with the role, the content (and its log-probabilities, when the answer has them) and one
with the finish reason, then a last chunk with no choices and the usage (the ``stream_usage``
step hides it from a client that did not ask for it)::

    async for chunk in replay_chat(answer):
        ...   # ChatCompletionChunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "19"}}]) ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lmdeck.protocol.chat import ChatCompletionChunk, ChatCompletionResponse


async def replay_chat(answer: ChatCompletionResponse) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of ``answer``, in order, ending with the usage chunk (when ``answer`` has usage)."""

    def chunk(choices: list[dict[str, Any]]) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=answer.id, created=answer.created, model=answer.model, choices=choices)

    for choice in answer.choices:
        delta = {k: v for k, v in choice.message.items() if k in ("role", "content", "tool_calls", "refusal")}
        delta.setdefault("role", "assistant")
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(tool_calls)]
        first: dict[str, Any] = {"index": choice.index, "delta": delta, "finish_reason": None}
        if choice.logprobs is not None:
            first["logprobs"] = choice.logprobs
        yield chunk([first])
        yield chunk([{"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason}])
    if answer.usage is not None:
        last = chunk([])
        last.usage = answer.usage
        yield last
