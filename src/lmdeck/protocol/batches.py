"""``/v1/batches`` schemas: OpenAI's batch object, the create request and a line of the output files.

A batch moves ``validating → in_progress → finalizing → completed``; it ends ``failed`` when its
input cannot run at all, ``cancelling → cancelled`` when cancelled, and ``expired`` when its
``completion_window`` (24 hours) passes first. Times are Unix seconds.

An output line (``output_file_id``) and an error line (``error_file_id``) have OpenAI's shape::

    {"id": "batch_req_…", "custom_id": "row-1", "response": {"status_code": 200, "request_id": "…",
     "body": {...}}, "error": null}
    {"id": "batch_req_…", "custom_id": "row-2", "response": {"status_code": 400, "request_id": "…",
     "body": {"error": {...}}}, "error": null}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.files import BatchURL

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
#: Statuses a batch does not leave.
FINAL_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})


class BatchCreateRequest(BaseModel):
    """``POST /v1/batches``."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1)
    endpoint: BatchURL
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


class BatchRequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchErrorData(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchErrorData] = Field(default_factory=list)


class BatchObject(BaseModel):
    """OpenAI's batch object."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str = "24h"
    status: BatchStatus = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts = Field(default_factory=BatchRequestCounts)
    metadata: dict[str, str] | None = None


class BatchList(BaseModel):
    """``GET /v1/batches``: newest first."""

    object: Literal["list"] = "list"
    data: list[BatchObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class BatchResponse(BaseModel):
    status_code: int
    request_id: str
    body: dict[str, Any]


class BatchOutputLine(BaseModel):
    """One line of a batch's output or error file."""

    id: str
    custom_id: str
    response: BatchResponse | None = None
    error: dict[str, Any] | None = None
