"""``/api/registry/models``: registered models, versions, aliases, deployment history."""

from __future__ import annotations

from lmdeck.app.routes.registry_pointers import PointerKind, pointer_router
from lmdeck.app.services import runtime_of
from lmdeck.protocol.registry import ModelVersionSpec

MODELS = PointerKind(
    kind="model",
    spec=ModelVersionSpec,
    catalog=lambda request: runtime_of(request).models,
    list_summary="List registered models with their aliases",
    register_summary="Register a model (or update its description)",
    show_summary="A model with its versions and aliases",
    history_summary="Deployment history: every alias move, newest first",
)

router = pointer_router(MODELS)
