"""``/api/registry/...``: the registry API, one module per part, gathered here for the app factory."""

from __future__ import annotations

from fastapi import APIRouter

from lmdeck.app.routes import (
    prompt_optimization,
    registry_config,
    registry_datasets,
    registry_models,
    registry_prompts,
)

router = APIRouter()
router.include_router(registry_models.router)
router.include_router(registry_prompts.router)
router.include_router(prompt_optimization.router)
router.include_router(registry_datasets.router)
router.include_router(registry_config.router)
