"""``/v1/responses``: OpenAI's Responses API (see :mod:`lmdeck.gateway.ingress.responses.serving`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lmdeck.app.body_schema import documented_body
from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import responses_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import checked_in_pipeline, require
from lmdeck.protocol.responses import ResponsesRequest

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute)

#: Any valid key: the pipeline's authenticate step checks it; stored responses are scoped to its team.
INFERENCE = checked_in_pipeline("inference")


@router.post(
    "/responses",
    summary="Create a model response (OpenAI's Responses API)",
    openapi_extra={**INFERENCE, **documented_body(ResponsesRequest)},
)
async def create_response(request: Request) -> Response:
    return await responses_of(request).create(request)


@router.get("/responses/{response_id}", summary="A stored response of this key's team")
async def retrieve_response(
    response_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> Response:
    return await responses_of(request).retrieve(principal, response_id)


@router.delete("/responses/{response_id}", summary="Delete a stored response of this key's team")
async def delete_response(
    response_id: str, request: Request, principal: Principal = Depends(require("inference"))
) -> Response:
    return await responses_of(request).delete(principal, response_id)
