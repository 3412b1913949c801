"""``/v1/chat/completions`` schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from lmdeck.protocol.limits import INT64_MAX, INT64_MIN, MAX_TOKENS


class Usage(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, joining the text parts of a multi-part content."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False

    def asks(self) -> bool:
        """Whether these options ask for anything (``include_usage: true`` or an option lmdeck does not know)."""
        return self.include_usage or any(v not in (None, False) for v in (self.model_extra or {}).values())


def stream_options_need_stream(options: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
    """Refuse ``stream_options`` that ask for something on a request that does not stream, as OpenAI does."""
    if options is not None and options.asks() and not info.data.get("stream"):
        raise ValueError("`stream_options` only applies to streams: set `stream: true`, or remove it")
    return options


class ChatCompletionRequest(BaseModel):
    """A chat request; unknown fields are kept and passed to the upstream."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "demo", "messages": [{"role": "user", "content": "What is 12+7?"}]}]},
    )

    #: lmdeck extension: a registered prompt to render into ``messages`` (see lmdeck.registry.prompt_step).
    prompt: dict[str, Any] | None = None
    model: str = Field(default="", validate_default=True)
    messages: list[ChatMessage] = Field(default_factory=list, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=INT64_MAX)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None

    _stream_options = field_validator("stream_options")(stream_options_need_stream)

    @field_validator("model", "messages")
    @classmethod
    def _required_unless_prompt(cls, value: Any, info: ValidationInfo) -> Any:
        if not value and info.data.get("prompt") is None:
            raise ValueError(f"`{info.field_name}` is required (it may be left out only with an lmdeck `prompt`)")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def upstream_payload(self, model: str) -> dict[str, Any]:
        """The body to send upstream: lmdeck's own extension fields removed, the model replaced."""
        payload = self.model_dump(exclude_none=True, exclude=LMDECK_FIELDS)
        payload["model"] = model
        return payload


#: Request fields that are lmdeck extensions and never sent upstream.
LMDECK_FIELDS = {"prompt", "tags"}


class ChatChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = 0
    message: dict[str, Any]
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class ChatCompletionChunk(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage | None = None
