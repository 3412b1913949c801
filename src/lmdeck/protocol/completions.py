"""``/v1/completions`` (legacy text completion) schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.chat import LMDECK_FIELDS, StreamOptions, Usage, stream_options_need_stream
from lmdeck.protocol.limits import INT64_MAX, INT64_MIN, MAX_TOKENS


class CompletionRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"model": "demo", "prompt": "12+7=", "max_tokens": 4}]}
    )

    model: str = Field(min_length=1)
    prompt: str | list[str]
    stream: bool = False
    stream_options: StreamOptions | None = None
    #: 0 generates nothing: with ``echo`` (and ``logprobs``) it scores the prompt.
    max_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=INT64_MAX)
    user: str | None = None

    _stream_options = field_validator("stream_options")(stream_options_need_stream)

    def token_limit(self) -> int | None:
        return self.max_tokens

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def upstream_payload(self, model: str) -> dict[str, Any]:
        # ``prompt`` is lmdeck's prompt-registry field on chat requests, but the text itself here.
        payload = self.model_dump(exclude_none=True, exclude=LMDECK_FIELDS - {"prompt"})
        payload["model"] = model
        return payload


class CompletionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: Usage | None = None
