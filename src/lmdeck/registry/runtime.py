"""The registry inside a gateway: built once in ``build_gateway`` and reached by the API routes.

    registry = RegistryRuntime(settings, db, providers, provider_ctx)  # before the router is built
    router = Router.from_settings(settings, providers, provider_ctx)
    registry.install(router, lambda s: Router.from_settings(s, providers, provider_ctx), Dispatcher)
    pipeline = build_pipeline([..., *registry.steps(), ...], terminal=Dispatcher(router))
    services.append(registry)

``install`` ties the registry to the router (route owners, applied routes, config sync);
``steps`` declares its pipeline steps (phases in :mod:`lmdeck.pipeline.order`): ``prompt``
and, after it, ``bundle`` in phase ``resolve``, and ``applied-routes`` in phase ``route``,
last before the dispatcher. Building the runtime binds its model resolver to the
``registry`` provider of ``providers`` (when that provider is registered), so that
``registry:name@alias`` targets follow this gateway's aliases.
"""

from __future__ import annotations

import logging

from lmdeck.db import Database
from lmdeck.gateway.routing.router import Router
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.policy.credentials import CredentialGate
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.egress import EgressPolicy
from lmdeck.registry.alias_provider import AliasProviders
from lmdeck.registry.bundle import BundleLog, StampBundle
from lmdeck.registry.catalog import AuditTrail
from lmdeck.registry.config_sync import ConfigSync
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.model_registry import ModelRegistry
from lmdeck.registry.prompt_registry import PromptRegistry
from lmdeck.registry.prompt_step import RenderPrompt
from lmdeck.registry.rendering import TemplateRenderer
from lmdeck.registry.resolver import ModelResolver
from lmdeck.registry.route_overlay import AppliedRoutes, RouterFactory, RouteTable, TerminalFactory
from lmdeck.registry.route_owners import RouteOwners
from lmdeck.settings import Settings

log = logging.getLogger(__name__)


def default_audit(db: Database) -> AuditTrail | None:
    try:
        from lmdeck.policy.audit import AuditLog
    except ImportError:
        log.warning("the audit log is not available: registry moves are kept in their history only")
        return None
    return AuditLog(db)


class RegistryRuntime:
    """Live registry, model resolver, pipeline steps and the serving classes of the registry API."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        providers: ProviderRegistry,
        provider_ctx: ProviderContext,
        *,
        audit: AuditTrail | None = None,
        credentials: CredentialGate | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.providers = providers
        self.egress = egress
        self.live = LiveRegistry(db, poll_interval=settings.registry.poll_interval)
        self.resolver = ModelResolver(self.live, providers, provider_ctx, credentials)
        if "registry" in providers:
            providers.add("registry", AliasProviders(self.resolver))
        self.audit = audit if audit is not None else default_audit(db)
        self.models = ModelRegistry(db, self.live, self.audit, settings, providers.names, credentials)
        self.renderer = TemplateRenderer(
            workers=settings.registry.render_workers,
            cpu_seconds=settings.registry.render_cpu_seconds,
            memory_mb=settings.registry.render_memory_mb,
        )
        self.prompts = PromptRegistry(db, self.live, self.audit, settings, self.renderer)
        self.datasets = DatasetRegistry(db)
        self.bundles = BundleLog(db)
        self.overlay: AppliedRoutes | None = None
        self._table: RouteTable | None = None
        self._sync: ConfigSync | None = None
        self._route_owners: RouteOwners | None = None

    @property
    def sync(self) -> ConfigSync:
        if self._sync is None:
            raise RuntimeError("RegistryRuntime.install() was not called")
        return self._sync

    @property
    def route_owners(self) -> RouteOwners:
        """Who owns each live route (blocking lookups: call from a worker thread)."""
        if self._route_owners is None:
            raise RuntimeError("RegistryRuntime.install() was not called")
        return self._route_owners

    def install(self, router: Router, build_router: RouterFactory, build_terminal: TerminalFactory) -> None:
        """Tie the registry to the gateway's router; call once, before :meth:`steps`."""
        table = self._table = RouteTable(router)
        self._route_owners = RouteOwners(self.db, table, self.live)
        self.models.routes = self._route_owners
        self.overlay = AppliedRoutes(self.live, self.settings, build_router, build_terminal)
        self._sync = ConfigSync(
            self.db,
            self.live,
            self.models,
            self.prompts,
            table,
            self.providers.names,
            self.audit,
            self.settings,
            self.egress,
        )

    def steps(self) -> list[StepDeclaration]:
        """The registry's pipeline steps, declared by phase (see :mod:`lmdeck.pipeline.order`)."""
        if self._table is None or self.overlay is None:
            raise RuntimeError("RegistryRuntime.install() was not called")
        return [
            StepDeclaration(RenderPrompt(self.live, self.renderer), "resolve"),
            StepDeclaration(StampBundle(self.live, self._table, self.bundles), "resolve", after=("prompt",)),
            StepDeclaration(self.overlay, "route"),
        ]

    async def start(self) -> None:
        await self.live.start()

    async def stop(self) -> None:
        await self.live.stop()
        await self.bundles.drain()
        if self.overlay is not None:
            await self.overlay.aclose()
        await self.renderer.aclose()
