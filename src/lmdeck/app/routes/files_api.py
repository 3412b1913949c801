"""``/v1/files``: OpenAI's Files API for batch input and output (see :mod:`lmdeck.gateway.batches.files`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import files_of
from lmdeck.gateway.batches.files import not_found
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.files import FileDeleted, FileList, FileObject

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute)


@router.post(
    "/files",
    summary="Upload a file (multipart: `file`, `purpose` = `batch`)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"type": "string"}},
                    }
                }
            },
        }
    },
)
async def create_file(request: Request, principal: Principal = Depends(require("inference"))) -> FileObject:
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise APIError(
            400, "send the file as multipart/form-data with fields `file` and `purpose`", code="invalid_body"
        )
    async with request.form(max_files=1, max_fields=8) as form:
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or not purpose:
            raise APIError(400, "the `purpose` field is missing: send `purpose=batch`", param="purpose")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "the `file` field is missing or is not a file", param="file")
        store = files_of(request)
        if upload.size is not None:
            store.check_size(upload.size)
        data = await upload.read()
        return await store.create(principal, purpose, upload.filename or "upload.jsonl", data)


@router.get("/files", summary="The files of this key's team, newest first")
async def list_files(
    request: Request,
    purpose: str | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
    after: str | None = Query(default=None, description="the id of the last file of the previous page"),
    order: str = Query(default="desc", description="`desc` (newest first) is the only order"),
    principal: Principal = Depends(require("inference")),
) -> FileList:
    if order != "desc":
        raise APIError(400, "order: lmdeck lists files newest first only: send `desc` or leave it out", param="order")
    data, more = await files_of(request).listing(
        team_id=principal.team_id, key_id=principal.key_id, purpose=purpose, limit=limit, after=after
    )
    first, last = (data[0].id, data[-1].id) if data else (None, None)
    return FileList(data=data, has_more=more, first_id=first, last_id=last)


@router.get("/files/{file_id}", summary="A file of this key's team")
async def retrieve_file(
    file_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> FileObject:
    found = await files_of(request).get(file_id, team_id=principal.team_id, key_id=principal.key_id)
    if found is None:
        raise not_found(file_id)
    return found


@router.get("/files/{file_id}/content", summary="The content of a file of this key's team")
async def file_content(
    file_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> Response:
    content = await files_of(request).content(file_id, team_id=principal.team_id, key_id=principal.key_id)
    if content is None:
        raise not_found(file_id)
    return Response(content, media_type="application/jsonl")


@router.delete("/files/{file_id}", summary="Delete a file of this key's team")
async def delete_file(
    file_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> FileDeleted:
    if not await files_of(request).delete(file_id, team_id=principal.team_id, key_id=principal.key_id):
        raise not_found(file_id)
    return FileDeleted(id=file_id)
