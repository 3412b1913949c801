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
from typing import Protocol

import anyio

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import RouteOwner
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers.egress import url_host
from lmdeck.registry.catalog import AuditTrail, Catalog
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.route_owners import RouteOwners
from lmdeck.registry.versions import Version
from lmdeck.settings import Settings

REGISTRY_PROVIDER = "registry"


class VersionWriteCheck(Protocol):
    """Who may write what into a version (:class:`lmdeck.policy.credentials.CredentialGate`)."""

    def check_version(
        self, spec: ModelVersionSpec, principal: Principal, *, field: str = "", extra_hosts: list[str] = ...
    ) -> None: ...


class ModelRegistry(Catalog[ModelVersionSpec]):
    """Serving class of ``/api/registry/models``."""

    def __init__(
        self,
        db: Database,
        live: LiveRegistry,
        audit: AuditTrail | None,
        settings: Settings,
        provider_names: Callable[[], list[str]],
        writes: VersionWriteCheck | None = None,
    ) -> None:
        super().__init__("model", db, live, audit, settings)
        self.provider_names = provider_names
        self.writes = writes
        #: Set by ``RegistryRuntime.install`` once the routes are known.
        self.routes: RouteOwners | None = None

    def traffic_routes(self, name: str, labels: set[str] | None) -> list[RouteOwner]:
        """The routes following ``name@label`` (any alias when ``labels`` is None): moving the alias
        moves their traffic."""
        return self.routes.following(name, labels) if self.routes is not None else []

    def applied_hosts(self) -> list[str]:
        """Hosts of the routes an admin applied: part of the admin's configuration, so allowed upstreams."""
        hosts = [url_host(t.base_url) for r in self.live.snapshot.routes.values() for t in r.targets if t.base_url]
        return [h for h in hosts if h]

    def check_writer(self, spec: ModelVersionSpec, principal: Principal, field: str = "") -> None:
        """Refuse what ``principal`` may not write into a version (credentials, upstream URL); APIError 400/403."""
        if self.writes is not None:
            self.writes.check_version(spec, principal, field=field, extra_hosts=self.applied_hosts())

    async def create_version(
        self, name: str, spec: ModelVersionSpec, principal: Principal, description: str | None = None
    ) -> Version[ModelVersionSpec]:
        # The adapter rule reads the jobs table and resolves paths on disk: off the event loop.
        await anyio.to_thread.run_sync(lambda: self.check_writer(spec, principal))
        return await super().create_version(name, spec, principal, description)

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
