"""``/v1/*``: the OpenAI-compatible surface."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lmdeck.app.body_schema import documented_body
from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import checked_in_pipeline, require
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ModelCard, ModelList

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute)

#: Any valid key reaches /v1/*: the pipeline's authenticate step checks it and applies the key's rules.
INFERENCE = checked_in_pipeline("inference")


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible)",
    openapi_extra={**INFERENCE, **documented_body(ChatCompletionRequest)},
)
async def chat_completions(request: Request) -> Response:
    return await gateway_of(request).serving.handle(request, "chat")


@router.post(
    "/completions",
    summary="Create a text completion (OpenAI-compatible)",
    openapi_extra={**INFERENCE, **documented_body(CompletionRequest)},
)
async def completions(request: Request) -> Response:
    return await gateway_of(request).serving.handle(request, "completions")


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    openapi_extra={**INFERENCE, **documented_body(EmbeddingRequest)},
)
async def embeddings(request: Request) -> Response:
    return await gateway_of(request).serving.handle(request, "embeddings")


def model_cards(request: Request, principal: Principal) -> list[ModelCard]:
    """The routes ``principal`` may use, as OpenAI model objects."""
    return [
        ModelCard(id=route.name, description=route.description, kind=route.kind)
        for route in gateway_of(request).route_configs()
        if principal.may_use(route.name)
    ]


@router.get("/models", summary="List the models (routes) this key may use")
async def list_models(request: Request, principal: Principal = Depends(require("inference"))) -> ModelList:
    return ModelList(data=model_cards(request, principal))


@router.get("/models/{model:path}", summary="One model (route) this key may use; 404 for any other")
async def retrieve_model(
    model: str, request: Request, principal: Principal = Depends(require("inference"))
) -> ModelCard:
    for card in model_cards(request, principal):
        if card.id == model:
            return card
    raise APIError(
        404,
        f"the model {model!r} does not exist or this key may not use it: GET /v1/models lists those it may",
        param="model",
        code="model_not_found",
    )
