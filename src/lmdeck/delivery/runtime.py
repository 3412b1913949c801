"""Progressive delivery inside a gateway: built once in ``build_gateway``, reached by the routes.

    delivery = DeliveryRuntime(settings, db, metrics.registry, registry, audit=policy.audit)
    pipeline = build_pipeline([..., *delivery.steps(eligible), ...], terminal=...)
    observers.append(delivery.exposures)     # what each release served, written in the background
    services.append(delivery)                # the serving releases' poller and the controller's loop

``steps`` declares the ``release`` step in phase ``resolve``, after ``experiment`` and before
``prompt`` (see :mod:`lmdeck.delivery.step`). ``events`` is the bus monitoring subscribes to;
``releases.rollback(name, reason, actor)`` is the action an alert calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from lmdeck.db import Database
from lmdeck.delivery.controller import ReleaseController, ShadowEvidence
from lmdeck.delivery.events import DeliveryEvents
from lmdeck.delivery.exposures import ReleaseExposures
from lmdeck.delivery.metrics import ReleaseMetrics
from lmdeck.delivery.service import Audit, ReleaseService
from lmdeck.delivery.step import ReleaseStep
from lmdeck.delivery.store import ReleaseStore
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ReleaseSpec
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import ConfigError, Settings

log = logging.getLogger(__name__)

#: Who creates and starts the releases the config file declares.
CONFIG = Principal(key_id="config", role="admin", name="config file")


def declared_releases(items: list[dict[str, Any]]) -> list[ReleaseSpec]:
    """The config file's ``releases``, validated; a ConfigError naming the field otherwise."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(ReleaseSpec.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"releases[{i}].{loc}: {err['msg']} (see docs/delivery.md)") from None
    return out


class DeliveryRuntime:
    """Releases of one gateway: the service, the canary step, the exposures and the controller."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics_registry: CollectorRegistry | None = None,
        registry: RegistryRuntime | None = None,
        *,
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = settings.release_controller
        self.declared = declared_releases(settings.releases)
        self.events = DeliveryEvents()
        self.store = ReleaseStore(db)
        self.metrics = ReleaseMetrics(metrics_registry) if metrics_registry is not None else None
        live = registry.live if registry is not None else None
        self.releases = ReleaseService(
            self.store,
            (lambda: live.snapshot) if live is not None else None,
            prompts=registry.prompts if registry is not None else None,
            models=registry.models if registry is not None else None,
            audit=audit,
            events=self.events,
            routes=(lambda: registry.route_owners) if registry is not None else None,
            clock=clock,
            poll_interval=config.poll_interval,
        )
        self.exposures = ReleaseExposures(self.store, self.metrics)
        #: The shadow stage's evidence, when one is installed (the controller asks it for verdicts).
        self.shadow: ShadowEvidence | None = None
        self.controller = ReleaseController(
            self.releases,
            self.exposures,
            shadow=lambda: self.shadow,
            metrics=self.metrics,
            clock=clock,
            tick_s=config.analysis_tick_s,
        )
        #: False: the controller is started and stopped by whoever runs the background jobs (the
        #: leader election of ``lmdeck serve``), not with this runtime.
        self.run_controller = True

    def steps(self, eligible: RouteCheck = route_refusal) -> list[StepDeclaration]:
        """The ``release`` step, after ``experiment`` and (with a registry) before ``prompt``."""
        before = ("prompt",) if self.releases.snapshot is not None else ()
        step = ReleaseStep(self.releases.serving, eligible)
        return [StepDeclaration(step, "resolve", after=("experiment",), before=before)]

    async def declare(self) -> None:
        """Create and start each declared release that does not exist yet (one that exists is left as it is)."""
        for spec in self.declared:
            found = await anyio.to_thread.run_sync(self.store.get, spec.name)
            if found is not None:
                if found.spec != spec:
                    log.warning(
                        "release %s exists with another spec; releases do not change: name a new one", spec.name
                    )
                continue
            try:
                await self.releases.create(spec, CONFIG)
                await self.releases.act(spec.name, "start", principal=CONFIG, reason="declared in the config file")
            except APIError as exc:
                log.warning("declared release %s was not started: %s", spec.name, exc.message)

    async def start(self) -> None:
        await self.exposures.start()
        await self.releases.start()
        await self.declare()
        if self.run_controller:
            await self.controller.start()

    async def stop(self) -> None:
        if self.run_controller:
            await self.controller.stop()
        await self.releases.stop()
        await self.exposures.stop()
