"""ResponseEvents: chat chunks in, Responses events out, in order and parseable by the openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from lmdeck.gateway.ingress.responses.response import shell
from lmdeck.gateway.ingress.responses.stream import ResponseEvents
from lmdeck.protocol.chat import ChatCompletionChunk
from lmdeck.protocol.responses import ResponsesRequest
from lmdeck.providers.base import UpstreamError

SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, int] | None = None) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {"id": "c", "created": 1, "model": "m", "choices": choices, "usage": usage}
    )


async def feed(chunks: list[Any], fail: Exception | None = None) -> AsyncIterator[BaseModel]:
    for c in chunks:
        yield c
    if fail is not None:
        raise fail


async def run(chunks: list[Any], fail: Exception | None = None) -> tuple[ResponseEvents, list[dict[str, Any]]]:
    translator = ResponseEvents(shell(ResponsesRequest(model="m", input="hi"), "resp_1"))
    events = [e async for e in translator.events(feed(chunks, fail))]
    for event in events:
        SDK_EVENT.validate_python(event)  # the official SDK's own event models accept each one
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return translator, events


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_text_in_openais_order_with_usage() -> None:
    translator, events = await run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(usage=USAGE),
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    completed = events[-1]["response"]
    assert completed["usage"]["input_tokens"] == 3 and completed["usage"]["output_tokens"] == 2
    assert completed["usage"]["total_tokens"] == 5 and translator.response.output_text() == "hello"


async def test_empty_deltas_are_dropped() -> None:
    _, events = await run([chunk({"content": ""}), chunk({"content": "a"}), chunk({"content": ""}), chunk({}, "stop")])
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["a"]


async def test_a_character_split_across_chunks_is_sent_whole() -> None:
    face = "\U0001f600"  # outside the BMP: two UTF-16 escapes in JSON, which an upstream may split
    high, low = face.encode("utf-16-le", "surrogatepass")[:2], face.encode("utf-16-le", "surrogatepass")[2:]
    halves = [high.decode("utf-16-le", "surrogatepass"), low.decode("utf-16-le", "surrogatepass")]
    translator, events = await run(
        [chunk({"content": "é" + halves[0]}), chunk({"content": halves[1] + "!"}), chunk({}, "stop")]
    )
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["é", face + "!"]
    assert all(d.encode("utf-8") for d in deltas)  # no lone surrogate: every delta encodes
    assert translator.response.output_text() == "é" + face + "!"


async def test_parallel_tool_calls_interleaved_become_two_items() -> None:
    def call(index: int, **fields: Any) -> Any:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    translator, events = await run(
        [
            call(0, id="call_a", type="function", function={"name": "add", "arguments": ""}),
            call(1, id="call_b", type="function", function={"name": "mul", "arguments": '{"x"'}),
            call(0, function={"arguments": '{"a": 1'}),
            call(1, function={"arguments": ": 2}"}),
            call(0, function={"arguments": "}"}),
            chunk({}, "tool_calls"),
        ]
    )
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"]) for e in added] == [(0, "call_a"), (1, "call_b")]
    done = {e["output_index"]: e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"}
    assert done == {0: '{"a": 1}', 1: '{"x": 2}'}
    deltas: dict[int, str] = {}
    for e in events:
        if e["type"] == "response.function_call_arguments.delta":
            deltas[e["output_index"]] = deltas.get(e["output_index"], "") + e["delta"]
    assert deltas == done
    output = events[-1]["response"]["output"]
    assert [(o["type"], o["name"]) for o in output] == [("function_call", "add"), ("function_call", "mul")]
    assert events[-1]["type"] == "response.completed" and translator.response.status == "completed"


async def test_an_upstream_error_mid_stream_ends_with_error_and_response_failed() -> None:
    failure = UpstreamError(502, "connection reset", kind="broken")
    translator, events = await run([chunk({"content": "par"})], fail=failure)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]
    assert "response.completed" not in [e["type"] for e in events]
    assert translator.response.status == "failed"


@pytest.mark.parametrize("finish", ["length"])
async def test_a_cut_answer_is_incomplete(finish: str) -> None:
    _, events = await run([chunk({"content": "a b"}), chunk({}, finish)])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
