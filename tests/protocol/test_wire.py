"""Responses on the wire keep every field they were given and invent none."""

from __future__ import annotations

from typing import Any

from lmdeck.protocol import ChatCompletionChunk, ChatCompletionResponse, CompletionResponse, EmbeddingResponse
from lmdeck.protocol.wire import wire_dict

UPSTREAM: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": None},
    },
    "service_tier": "default",
    "system_fingerprint": None,
    "a_field_from_the_future": {"x": None},
}


def test_an_upstream_answer_round_trips_exactly() -> None:
    """Regression: ``logprobs: null``, ``system_fingerprint: null`` and unknown nulls were dropped."""
    assert wire_dict(ChatCompletionResponse.model_validate(UPSTREAM)) == UPSTREAM
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": None}
    assert wire_dict(ChatCompletionChunk.model_validate(chunk)) == chunk


def test_answers_lmdeck_builds_carry_no_invented_nulls() -> None:
    built = ChatCompletionResponse(id="x", created=0, model="demo", choices=[])
    assert wire_dict(built) == {"id": "x", "object": "chat.completion", "created": 0, "model": "demo", "choices": []}
    completion = CompletionResponse(
        id="x", created=0, model="demo", choices=[{"index": 0, "text": "5", "logprobs": None}]
    )
    assert wire_dict(completion)["choices"] == [{"index": 0, "text": "5", "logprobs": None}]
    embeddings = EmbeddingResponse.model_validate({"data": [{"index": 0, "embedding": [0.5]}], "model": "e"})
    assert wire_dict(embeddings) == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": "e",
    }


def test_a_field_set_after_parsing_is_sent() -> None:
    response = ChatCompletionResponse.model_validate({k: v for k, v in UPSTREAM.items() if k != "usage"})
    assert "usage" not in wire_dict(response)
    response.usage = None
    assert wire_dict(response)["usage"] is None
