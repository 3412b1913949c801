"""``/v1/embeddings`` schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.chat import LMDECK_FIELDS, Usage


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

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
