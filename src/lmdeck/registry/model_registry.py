"""The model registry: registered models, their immutable versions, aliases and deployment history.

A version records what serves it (provider + upstream model or a local
artifact path), what it is (base model, adapter, quantization, parameters),
how good it is (metrics, tags) and where it came from (lineage: dataset
version, training job, parent version). Aliases such as ``production`` are
what routes name (``registry:support-bot@production``); their move history
is the deployment history::

    models = ModelRegistry(db, live, audit, settings, provider_names=["openai", "local"])
    await models.create_version("support-bot", ModelVersionSpec(model="gpt-4o-mini"), admin)
    await models.move("support-bot", "production", 1, reason="first release", principal=admin)
"""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.db import Database
from lmdeck.protocol import APIError
from lmdeck.registry.catalog import AuditTrail, Catalog
from lmdeck.registry.live import LiveRegistry
from lmdeck.settings import ModelVersionSpec, Settings

REGISTRY_PROVIDER = "registry"


class ModelRegistry(Catalog[ModelVersionSpec]):
    """Serving class of ``/api/registry/models``."""

    def __init__(
        self,
        db: Database,
        live: LiveRegistry,
        audit: AuditTrail | None,
        settings: Settings,
        provider_names: Callable[[], list[str]],
    ) -> None:
        super().__init__("model", db, live, audit, settings)
        self.provider_names = provider_names

    def validate(self, spec: ModelVersionSpec) -> None:
        known = [n for n in self.provider_names() if n != REGISTRY_PROVIDER]
        if spec.provider == REGISTRY_PROVIDER:
            raise APIError(
                400,
                "a model version cannot be served by another registry alias: name a real provider",
                param="provider",
                code="invalid_provider",
            )
        if spec.provider not in known:
            raise APIError(
                400,
                f"unknown provider {spec.provider!r} (known: {', '.join(known) or 'none'}); "
                "install the plugin that provides it",
                param="provider",
                code="invalid_provider",
            )
        parent = spec.lineage.parent_version
        if parent is not None and spec.version is not None and parent >= spec.version:
            raise APIError(400, "lineage.parent_version must be an earlier version", param="lineage.parent_version")
