"""``/v1/embeddings`` schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.chat import LMDECK_FIELDS, Usage
from lmdeck.protocol.limits import MAX_TOKENS

#: A token id (embedding models take token ids as input, too).
TokenId = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
#: Most dimensions an embedding may be asked for.
MAX_DIMENSIONS = 65536
#: Most inputs one request may embed (OpenAI's limit).
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"model": "embed", "input": "the quick brown fox"}]}
    )

    model: str = Field(min_length=1)
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request, not {len(value)}: split them across requests")
        return value

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(x, str) for x in self.input):
            return [str(x) for x in self.input]
        raise ValueError("token-id input is only accepted by upstreams that support it")

    def upstream_payload(self, model: str) -> dict[str, Any]:
        payload = self.model_dump(exclude_none=True, exclude=LMDECK_FIELDS)
        payload["model"] = model
        return payload


class Embedding(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: str = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[Embedding]
    model: str
    usage: Usage | None = None
