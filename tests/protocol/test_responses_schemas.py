"""ResponsesChatRequest: the original body is offered only while nothing changed the chat request."""

from __future__ import annotations

from dataclasses import dataclass

from lmdeck.protocol.chat import ChatMessage
from lmdeck.protocol.responses import ResponsesChatRequest

ORIGINAL = {"model": "route", "input": "my card is 4111 1111 1111 1111"}


@dataclass
class Gate:
    native_ok: bool = True


def chat(stream: bool = False) -> ResponsesChatRequest:
    body = {"model": "route", "messages": [{"role": "user", "content": ORIGINAL["input"]}], "stream": stream}
    return ResponsesChatRequest.model_validate(body)


def test_offered_while_unchanged_and_the_gate_open() -> None:
    request, gate = chat(), Gate()
    request.keep_native(ORIGINAL, gate)
    assert request.native_body() == ORIGINAL
    # A step that routes elsewhere (the model name) changes nothing the upstream is asked.
    assert request.model_copy(update={"model": "other"}).native_body() == ORIGINAL
    gate.native_ok = False
    assert request.native_body() is None


def test_a_rewritten_request_is_never_sent_as_the_original() -> None:
    request = chat()
    request.keep_native(ORIGINAL, Gate())
    redacted = [ChatMessage(role="user", content="my card is [REDACTED]")]
    assert request.model_copy(update={"messages": redacted}).native_body() is None
    assert request.model_copy(update={"temperature": 0.1}).native_body() is None


def test_never_for_a_stream_or_a_request_without_an_original() -> None:
    streamed = chat(stream=True)
    streamed.keep_native(ORIGINAL, Gate())
    assert streamed.native_body() is None
    assert chat().native_body() is None
