"""``/v1/messages`` schemas: Anthropic's Messages API (requests, messages, usage, errors).

A request's ``messages`` alternate ``user`` and ``assistant`` turns, each a string or a list of
content blocks::

    {"type": "text", "text": "hi"}
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "..."}}
    {"type": "image", "source": {"type": "url", "url": "https://..."}}
    {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1}}          # assistant
    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3"}                # user

Blocks are checked where they are translated (:mod:`lmdeck.gateway.ingress.messages.request`), which
refuses a block it cannot carry with a 400 naming it (``messages.2.content.0.type``). A field no
schema here knows is refused too: every parameter is honoured or refused by name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.limits import MAX_TOKENS


class MessageParam(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(BaseModel):
    """``POST /v1/messages``: ``model`` is an lmdeck route name; ``max_tokens`` is required, as Anthropic requires."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "demo", "max_tokens": 64, "messages": [{"role": "user", "content": "What is 12+7?"}]}
            ]
        },
    )

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class CountTokensRequest(BaseModel):
    """``POST /v1/messages/count_tokens``: the tokens a Messages request's input would take."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "demo", "messages": [{"role": "user", "content": "What is 12+7?"}]}]},
    )

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class TokenCount(BaseModel):
    """The answer of ``/v1/messages/count_tokens``."""

    input_tokens: int


class MessageUsage(BaseModel):
    """Tokens of one message: ``input_tokens`` excludes the cache's reads and writes, counted apart."""

    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


class Message(BaseModel):
    """An answer: ``content`` holds ``text`` and ``tool_use`` blocks."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[dict[str, Any]] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: MessageUsage = Field(default_factory=MessageUsage)


AnthropicErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]

#: The error ``type`` Anthropic answers with for each HTTP status (others: 4xx → invalid_request_error,
#: 5xx → api_error).
ANTHROPIC_ERROR_TYPES: dict[int, AnthropicErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> AnthropicErrorType:
    """The Anthropic error ``type`` for an HTTP ``status``."""
    if status in ANTHROPIC_ERROR_TYPES:
        return ANTHROPIC_ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def anthropic_error_body(message: str, kind: AnthropicErrorType) -> dict[str, Any]:
    """``{"type": "error", "error": {"type": kind, "message": message}}``."""
    return {"type": "error", "error": {"type": kind, "message": message}}
