"""``/v1/files`` schemas: OpenAI's file object, its listing and deletion, and a batch input line.

A file of purpose ``batch`` is JSON Lines, one request per line::

    {"custom_id": "row-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "chat", ...}}

``custom_id`` is unique within the file; ``url`` is one of :data:`BATCH_URLS`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The endpoints a batch line may name.
BATCH_URLS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions")
BatchURL = Literal["/v1/chat/completions", "/v1/embeddings", "/v1/completions"]
#: The purposes a file may be uploaded with; ``batch_output`` files are written by lmdeck itself.
FilePurpose = Literal["batch", "batch_output"]


class FileObject(BaseModel):
    """OpenAI's file object (``bytes`` is the size in bytes; times are Unix seconds)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class FileList(BaseModel):
    """``GET /v1/files``: newest first."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    """``DELETE /v1/files/{id}``'s answer."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class BatchInputLine(BaseModel):
    """One line of a batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: BatchURL
    body: dict[str, Any]
