"""``/v1/*``: the OpenAI-compatible surface."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lmdeck.policy.auth import checked_in_pipeline, require
from lmdeck.policy.principal import Principal
from lmdeck.protocol import ModelCard, ModelList

router = APIRouter(prefix="/v1", tags=["openai"])

#: Any valid key reaches /v1/*: the pipeline's authenticate step checks it and applies the key's rules.
INFERENCE = checked_in_pipeline("inference")


@router.post("/chat/completions", summary="Create a chat completion (OpenAI-compatible)", openapi_extra=INFERENCE)
async def chat_completions(request: Request) -> Response:
    return await request.app.state.gateway.serving.handle(request, "chat")


@router.post("/completions", summary="Create a text completion (OpenAI-compatible)", openapi_extra=INFERENCE)
async def completions(request: Request) -> Response:
    return await request.app.state.gateway.serving.handle(request, "completions")


@router.post("/embeddings", summary="Create embeddings (OpenAI-compatible)", openapi_extra=INFERENCE)
async def embeddings(request: Request) -> Response:
    return await request.app.state.gateway.serving.handle(request, "embeddings")


@router.get("/models", summary="List the models (routes) this key may use")
async def list_models(request: Request, principal: Principal = Depends(require("inference"))) -> ModelList:
    cards = []
    for route in request.app.state.gateway.route_configs():
        if principal.may_use(route.name):
            cards.append(ModelCard(id=route.name, description=route.description, kind=route.kind))
    return ModelList(data=cards)
