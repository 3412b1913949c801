"""The feature flags of one gateway: store, live snapshot, service, pipeline steps and metric.

flags = FlagRuntime(db, metrics.registry, audit=policy.audit, routes=lambda: registry.route_owners)
pipeline = build_pipeline([..., *flags.steps(route_config, eligible), ...], terminal)
await flags.start()          # polls for changes made by other processes
await flags.service.disable_flag("support-v2", "alert:high-error-rate")
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from lmdeck.db import Database
from lmdeck.delivery.flags.live import LiveFlags
from lmdeck.delivery.flags.service import FlagService, RouteOwnership
from lmdeck.delivery.flags.step import FlagRoutes, FlagsStep
from lmdeck.delivery.flags.store import FlagStore
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.flags import FlagRecord
from lmdeck.settings import RouteConfig


class FlagRuntime:
    """Feature flags: a service started and stopped with the gateway (it polls the flags' revision)."""

    def __init__(
        self,
        db: Database,
        registry: CollectorRegistry,
        *,
        audit: AuditLog | None = None,
        routes: Callable[[], RouteOwnership | None] | None = None,
        poll_interval: float = 2.0,
    ) -> None:
        self.store = FlagStore(db)
        self.live = LiveFlags(self.store, poll_interval=poll_interval)
        self.service = FlagService(self.store, self.live, audit, routes)
        self.evaluations = Counter(
            "lmdeck_flag_evaluations",
            "feature flag values served, per flag and value",
            ["flag", "value"],
            registry=registry,
        )

    def steps(
        self, route_config: Callable[[str], RouteConfig | None], eligible: RouteCheck = route_refusal
    ) -> list[StepDeclaration]:
        """``flags`` first in phase resolve; ``flag-routes`` once the prompt has named the route."""
        return [
            StepDeclaration(FlagsStep(self.live, self.evaluations), "resolve", before=("experiment",)),
            StepDeclaration(
                FlagRoutes(self.live, route_config, eligible),
                "resolve",
                after=("prompt",),
                before=("experiment-pin", "bundle"),
            ),
        ]

    async def disable_flag(self, name: str, actor: str) -> FlagRecord:
        """Turn ``name`` off as ``actor`` (alert actions call this); audited and live at once."""
        return await self.service.disable_flag(name, actor)

    async def start(self) -> None:
        await self.live.start()

    async def stop(self) -> None:
        await self.live.stop()
