"""Which request parameters a request *uses*: the names a target's capabilities are checked against.

A parameter is in use when the request sets it to a value that asks for something: ``logprobs:
true``, ``n: 3``, ``tools: [...]``, ``tool_choice: "required"``. Values that ask for nothing
(``logprobs: false``, ``n: 1``, ``echo: false``, ``tools: []``, ``tool_choice: "auto"``,
``response_format: {"type": "text"}``) and ``null`` are not in use, so any target honours them.
``stream_options`` is named per key (``stream_options.include_usage``)::

    >>> body = ChatCompletionRequest.model_validate(
    ...     {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "n": 1})
    >>> parameters_in_use(body)
    ['logprobs']

Parameters every endpoint needs (``model``, ``messages``, ``prompt``, ``input``, ``stream``),
lmdeck's own extension fields and what the gateway itself acts on (``user`` and ``metadata``, kept
on the trace) are never listed: every target honours them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from lmdeck.protocol.chat import LMDECK_FIELDS, ChatCompletionRequest
from lmdeck.protocol.completions import CompletionRequest
from lmdeck.protocol.embeddings import EmbeddingRequest

Endpoint = Literal["chat", "completions", "embeddings"]

#: What each endpoint is called in messages.
ENDPOINT_NAMES: dict[Endpoint, str] = {
    "chat": "chat completions (/v1/chat/completions)",
    "completions": "text completions (/v1/completions)",
    "embeddings": "embeddings (/v1/embeddings)",
}

#: Fields every target of an endpoint serves: the request itself, not a parameter of it.
CORE: dict[Endpoint, frozenset[str]] = {
    "chat": frozenset({"model", "messages", "stream"}),
    "completions": frozenset({"model", "prompt", "stream"}),
    "embeddings": frozenset({"model", "input"}),
}

#: Fields the gateway acts on whatever the target: recorded on the trace (``metadata.conversation_id``
#: also keeps an experiment's assignment sticky).
GATEWAY = frozenset({"user", "metadata"})


def _is(*inert: Any) -> Callable[[Any], bool]:
    return lambda value: any(value == v and type(value) is type(v) for v in inert)


def _empty(value: Any) -> bool:
    return value in ([], {}, "")


#: Values of a parameter that ask for nothing beyond the default answer.
INERT: dict[str, Callable[[Any], bool]] = {
    "logprobs": _is(False),
    "top_logprobs": _is(0),
    "echo": _is(False),
    "n": _is(1),
    "best_of": _is(1),
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "logit_bias": _empty,
    "tools": _empty,
    "functions": _empty,
    "tool_choice": _is("none", "auto"),
    "function_call": _is("none", "auto"),
    "parallel_tool_calls": _is(True),
    "response_format": lambda v: v == {"type": "text"},
    "stop": _empty,
    "suffix": _empty,
    "store": _is(False),
    "modalities": lambda v: v == ["text"],
    "service_tier": _is("auto"),
    "encoding_format": _is("float"),
}


def endpoint_of(body: BaseModel) -> Endpoint:
    """The endpoint a request body is for."""
    if isinstance(body, ChatCompletionRequest):
        return "chat"
    if isinstance(body, CompletionRequest):
        return "completions"
    if isinstance(body, EmbeddingRequest):
        return "embeddings"
    raise TypeError(f"unknown request body {type(body).__name__}")


def parameters_in_use(body: BaseModel) -> list[str]:
    """The parameters ``body`` uses, in the order it lists them (unknown, future parameters included)."""
    endpoint = endpoint_of(body)
    skip = CORE[endpoint] | GATEWAY | (LMDECK_FIELDS - CORE[endpoint])
    used: list[str] = []
    # Field by field, so that the messages (the bulk of a request) are never copied.
    extra = body.model_extra or {}
    for name in [*type(body).model_fields, *extra]:
        if name in skip:
            continue
        value = extra[name] if name in extra else getattr(body, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
        if name == "stream_options" and isinstance(value, dict):
            used += [f"stream_options.{key}" for key, option in value.items() if option not in (None, False)]
            continue
        inert = INERT.get(name)
        if inert is not None and inert(value):
            continue
        used.append(name)
    return used
