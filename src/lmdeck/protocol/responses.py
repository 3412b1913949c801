"""``/v1/responses`` schemas: OpenAI's Responses API (requests, response objects, stored responses).

A request's ``input`` is a string (one user message) or a list of items::

    {"role": "user", "content": "hi"}                                   # a message (``type`` optional)
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"},
                                                    {"type": "input_image", "image_url": "https://..."}]}
    {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{\\"a\\": 1}"}
    {"type": "function_call_output", "call_id": "call_1", "output": "3"}

An item of another ``type`` is refused with a 400 naming it (``input.2.type``). Fields lmdeck does
not serve are named in :data:`REFUSED_FIELDS`; a field no schema knows is refused too (see
:func:`unknown_fields`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag

from lmdeck.protocol.chat import ChatCompletionRequest
from lmdeck.protocol.limits import MAX_TOKENS


class InputText(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["input_text", "output_text"]
    text: str


class InputImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class Refusal(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["refusal"]
    refusal: str


def _part_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "text" if kind in ("input_text", "output_text") else kind if isinstance(kind, str) else None


ContentPart = Annotated[
    Annotated[InputText, Tag("text")] | Annotated[InputImage, Tag("input_image")] | Annotated[Refusal, Tag("refusal")],
    Discriminator(_part_type),
]


class MessageItem(BaseModel):
    """A message: ``content`` a string or a list of ``input_text``/``input_image`` (``output_text`` in history)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(BaseModel):
    """A call the model made earlier (as a response's ``output`` holds it), sent back as history."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(BaseModel):
    """The result of the function call ``call_id``, as text."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]


def _item_type(value: Any) -> str | None:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type),
]


class TextFormat(BaseModel):
    """``text.format``: ``{"type": "text"}``, ``{"type": "json_object"}`` or
    ``{"type": "json_schema", "name": ..., "schema": {...}, "strict": bool}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: TextFormat | None = None


class FunctionTool(BaseModel):
    """Responses' flat function tool: ``{"type": "function", "name", "parameters", "strict", "description"}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    name: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class ResponsesRequest(BaseModel):
    """A ``POST /v1/responses`` body. ``tools`` are checked by the translation (built-in tools are
    refused by name unless the target speaks Responses natively)."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={"examples": [{"model": "demo", "input": "What is 12+7?"}]},
    )

    model: str = Field(min_length=1)
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool = True
    stream: bool = False
    reasoning: dict[str, Any] | None = None
    previous_response_id: str | None = None


#: Responses fields lmdeck does not translate: refused by name unless the target speaks Responses natively.
REFUSED_FIELDS = (
    "background",
    "conversation",
    "include",
    "max_tool_calls",
    "prompt",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
    "stream_options",
    "top_logprobs",
    "truncation",
)


def unknown_fields(request: ResponsesRequest) -> list[str]:
    """The fields of ``request`` no schema declares, that are not null (each one is refused by name)."""
    return [name for name, value in (request.model_extra or {}).items() if value is not None]


class ResponseUsage(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    input_tokens_details: dict[str, int] = Field(default_factory=lambda: {"cached_tokens": 0, "cache_write_tokens": 0})
    output_tokens: int = 0
    output_tokens_details: dict[str, int] = Field(default_factory=lambda: {"reasoning_tokens": 0})
    total_tokens: int = 0


class ResponseObject(BaseModel):
    """A response as OpenAI's API answers it (``object: "response"``); ``output`` holds ``message``
    and ``function_call`` items; ``created_at`` is in Unix seconds."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"] = "completed"
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[dict[str, Any]] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def output_text(self) -> str:
        """The text of the ``output_text`` parts of its message items, joined."""
        return "".join(
            str(part.get("text", ""))
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content", [])
            if part.get("type") == "output_text"
        )


class StoredResponse(BaseModel):
    """A stored response (``store: true``): its object, and the chat messages a later request that names
    it in ``previous_response_id`` continues from (its input, without its ``instructions``, and its output).

    ``created_at`` and ``expires_at`` are Unix seconds; ``team_id`` is the owning key's team
    (None for a key without one): only keys of that team read or delete it.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    team_id: str | None
    key_id: str | None
    created_at: float
    expires_at: float
    response: ResponseObject
    messages: list[dict[str, Any]]


class DeletedResponse(BaseModel):
    """``DELETE /v1/responses/{id}``'s answer."""

    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class NativeGate(Protocol):
    """What says whether a request may still go upstream as the client sent it (the request's ingress)."""

    native_ok: bool


class ResponsesChatRequest(ChatCompletionRequest):
    """A chat request translated from a Responses request, carrying the original body for a target that
    speaks the Responses API itself::

        chat = ResponsesChatRequest.model_validate(translated)
        chat.keep_native(original_body, ctx_ingress)
        chat.native_body()   # the original, or None once a step changed the chat request or cleared the gate

    The original is offered only while ``gate.native_ok`` holds and the chat request is what the
    translation made (a guardrail's redaction or a compression changes it: then only the translation
    may go upstream), and never for a stream (streams are served through the translation).
    """

    _native: dict[str, Any] | None = PrivateAttr(default=None)
    _gate: NativeGate | None = PrivateAttr(default=None)
    _fingerprint: bytes = PrivateAttr(default=b"")

    def _print(self) -> bytes:
        return orjson.dumps(self.upstream_payload(""), option=orjson.OPT_SORT_KEYS)

    def keep_native(self, body: dict[str, Any], gate: NativeGate) -> None:
        self._native, self._gate, self._fingerprint = body, gate, self._print()

    def native_body(self) -> dict[str, Any] | None:
        if self._native is None or self._gate is None or not self._gate.native_ok or self.stream:
            return None
        return self._native if self._print() == self._fingerprint else None
