"""Calling models through a gateway over HTTP with the OpenAI SDK, as an eval run's Ray worker does.

The same :class:`~lmdeck.evaluation.base.InferenceClient` as the in-process
:class:`~lmdeck.evaluation.inference.PipelineInference`: lmdeck's own body fields (``prompt``,
``tags``) travel as extra body fields, and a gateway's error becomes an
:class:`~lmdeck.protocol.APIError` with its status and message::

    inference = HttpInference(AsyncOpenAI(base_url="http://gw:8080/v1", api_key=token), tags=["eval"])
    reply = await inference.chat({"model": "calc", "messages": [{"role": "user", "content": "2+2"}]})
    reply.text, reply.latency_ms, reply.input_tokens

Over HTTP a reply carries no trace id or cost (both are on the trace, found by its tags).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import openai

from lmdeck.evaluation.base import ChatReply
from lmdeck.protocol import APIError


def _api_error(exc: openai.APIStatusError) -> APIError:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return APIError(exc.status_code, str(message or exc.message))


class HttpInference:
    """An ``InferenceClient`` over an ``openai.AsyncOpenAI`` client pointed at a gateway."""

    def __init__(self, client: openai.AsyncOpenAI, *, tags: Sequence[str] = ()) -> None:
        self.client = client
        self.tags = list(tags)

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply:
        extra = {k: v for k, v in body.items() if k not in ("model", "messages", "tags", "stream")}
        all_tags = [*self.tags, *body.get("tags", ()), *(t for t in tags if t not in self.tags)]
        if all_tags:
            extra["tags"] = all_tags
        started = time.perf_counter()
        try:
            response = await self.client.chat.completions.create(
                model=body["model"], messages=body["messages"], extra_body=extra
            )
        except openai.APIStatusError as exc:
            raise _api_error(exc) from None
        latency_ms = (time.perf_counter() - started) * 1000
        text = ""
        if response.choices:
            text = response.choices[0].message.content or ""
        usage = response.usage
        return ChatReply(
            text=text,
            latency_ms=latency_ms,
            input_tokens=usage.prompt_tokens if usage is not None else 0,
            output_tokens=usage.completion_tokens if usage is not None else 0,
        )

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]:
        try:
            response = await self.client.embeddings.create(model=route, input=texts)
        except openai.APIStatusError as exc:
            raise _api_error(exc) from None
        return [list(item.embedding) for item in sorted(response.data, key=lambda item: item.index)]
