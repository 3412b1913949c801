"""Random conversations that the OpenAI API accepts never trip the FAKE Anthropic API.

Hypothesis builds OpenAI chat requests from the pieces that trip a naive translation (empty and
whitespace text, system messages anywhere, an assistant opening, runs of one role, tool calls
and their results with a user turn between, prefills ending in whitespace, whitespace stop
sequences) and each must either be answered or, when nothing in it has content, be refused by
lmdeck with a 400 naming ``messages``: never refused by the upstream.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.base import ProviderContext
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.fake_anthropic import FakeAnthropic

TEXTS = ["", " ", "\n\t", "hi", "hi ", " two words ", "line\n", "Sure, "]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]

texts = st.sampled_from(TEXTS)
contents = st.one_of(
    texts, st.none(), st.lists(texts.map(lambda t: {"type": "text", "text": t}), min_size=0, max_size=3)
)


@st.composite
def steps(draw: st.DrawFn, ids: itertools.count[int]) -> list[dict[str, Any]]:
    kind = draw(st.sampled_from(["system", "developer", "user", "user", "assistant", "assistant", "tools"]))
    if kind == "tools":
        calls = [
            {"id": f"call:{next(ids)}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            for _ in range(draw(st.integers(1, 2)))
        ]
        out: list[dict[str, Any]] = [{"role": "assistant", "content": draw(contents), "tool_calls": calls}]
        if draw(st.booleans()):
            out.append({"role": "user", "content": draw(contents)})
        out += [{"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls]
        return out
    content = draw(contents)
    if kind != "user" and isinstance(content, list):
        content = [p for p in content if p["text"]] or None
    return [{"role": kind, "content": content}]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    ids = itertools.count()
    messages = [m for _ in range(draw(st.integers(1, 7))) for m in draw(steps(ids))]
    body: dict[str, Any] = {"model": "claude", "messages": messages, "stream": draw(st.booleans())}
    stop = draw(st.lists(st.sampled_from(["\n", " ", "\t\n", "END", "two"]), max_size=3))
    if stop:
        body["stop"] = stop
    sampling = draw(st.sampled_from(["none", "temperature", "top_p", "both_neutral"]))
    if sampling == "temperature":
        body["temperature"] = draw(st.floats(0, 1))
    elif sampling == "top_p":
        body["top_p"] = draw(st.floats(0.01, 1))
    elif sampling == "both_neutral":
        body.update(temperature=draw(st.floats(0, 1)), top_p=1)
    if any(m.get("tool_calls") for m in messages):
        body["tools"] = TOOLS
    return body


def has_content(body: dict[str, Any]) -> bool:
    def text(content: Any) -> str:
        if isinstance(content, list):
            return "".join(p["text"] for p in content)
        return content or ""

    return any(text(m.get("content")).strip() or m.get("tool_calls") for m in body["messages"])


async def send(body: dict[str, Any]) -> tuple[FakeAnthropic, Exception | None]:
    app = FakeAnthropic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        target = TargetConfig(provider="anthropic", model="claude-x", base_url="http://fake")
        provider = AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))
        request = ChatCompletionRequest.model_validate(body)
        try:
            if request.stream:
                [c async for c in provider.stream_chat(request)]
            else:
                await provider.chat(request)
        except Exception as exc:
            return app, exc
    return app, None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_openai_conversations_never_trip_the_upstream(body: dict[str, Any]) -> None:
    app, error = asyncio.run(send(body))
    if error is None:
        return
    assert isinstance(error, APIError), f"the upstream refused {app.requests[-1] if app.requests else body}: {error}"
    assert error.param == "messages" and not has_content(body), error.message
    assert app.requests == []
