"""The gateway's parts, built once from the settings and shared by every request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lmdeck.db import Database
from lmdeck.evaluation.runtime import EXTRAS_KEY as EVALUATION
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.eligibility import RouteEligibility
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.usage import StreamUsageFilter
from lmdeck.gateway.serving import InferenceServing
from lmdeck.gateway.steps.record import RecordStep, TraceObserver, TraceSink
from lmdeck.pipeline.chain import Pipeline, Step
from lmdeck.pipeline.identity import Authenticator
from lmdeck.policy.at_rest import secure_data_dir
from lmdeck.policy.auth import Authenticate
from lmdeck.policy.services import EXTRAS_KEY as POLICY
from lmdeck.policy.services import PolicyServices
from lmdeck.providers import ProviderContext, ProviderRegistry, load_providers
from lmdeck.providers.egress import EgressPolicy, check_config_egress
from lmdeck.providers.transport import Transport
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import RouteConfig, Settings
from lmdeck.tracing.metrics import GatewayMetrics
from lmdeck.tracing.otel import OTelExporter

log = logging.getLogger(__name__)


@runtime_checkable
class Service(Protocol):
    """Something with a lifetime: started with the app, stopped with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Gateway:
    """Everything the routes reach through ``request.app.state.gateway``."""

    settings: Settings
    db: Database
    transport: Transport
    providers: ProviderRegistry
    router: Router
    authenticator: Authenticator
    sink: TraceSink
    pipeline: Pipeline
    serving: InferenceServing
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    observers: list[TraceObserver] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    started: bool = False

    async def start(self) -> None:
        self.router.start_loading()  # local models load in the background while the rest starts
        for service in self.services:
            await service.start()
        self.started = True

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        for observer in self.observers:
            shutdown = getattr(observer, "shutdown", None)
            if callable(shutdown):
                shutdown()
        await self.router.aclose()
        await self.transport.aclose()
        self.db.dispose()
        self.started = False

    def route_configs(self) -> list[RouteConfig]:
        """Every route served now: the config file's, overlaid with those applied through the registry."""
        routes = {route.name: route.config for route in self.router.routes()}
        registry = self.extras.get("registry")
        overlay = getattr(registry, "overlay", None)
        routes.update(getattr(overlay, "routes", None) or {})
        return list(routes.values())

    def readiness(self) -> list[str]:
        problems = [] if self.started else ["starting"]
        return problems + [f"local model {name!r} is loading" for name in self.router.loading()]


def build_sink(settings: Settings, db: Database) -> TraceSink:
    from lmdeck.tracing.sink import DurableTraceSink

    return DurableTraceSink.from_settings(settings, db)


def build_gateway(
    settings: Settings,
    *,
    sink: TraceSink | None = None,
    providers: ProviderRegistry | None = None,
    announce_admin_key: bool = True,
) -> Gateway:
    secure_data_dir(settings)
    db = Database(settings.store_url)
    db.migrate()
    egress = EgressPolicy.from_settings(settings)
    check_config_egress(settings, egress)
    transport = AiohttpTransport(limit=1000, keepalive=30.0, egress=egress)
    providers = providers or load_providers()
    # Built before any provider: it binds the {"$secret": ...} references providers resolve.
    policy = PolicyServices.build(
        settings,
        db,
        announce_admin_key=announce_admin_key,
        egress=egress,
        default_base_url=providers.default_base_url,
    )
    provider_ctx = ProviderContext(settings=settings, transport=transport)
    registry = RegistryRuntime(settings, db, providers, provider_ctx, credentials=policy.credentials, egress=egress)
    router = Router.from_settings(settings, providers, provider_ctx)
    authenticator: Authenticator = policy.keys
    sink = sink or build_sink(settings, db)
    metrics = GatewayMetrics()
    if hasattr(sink, "depth"):
        metrics.gauge_from("lmdeck_spool_depth", "traces not yet in the store", lambda: {(): getattr(sink, "depth", 0)})
    metrics.gauge_from(
        "lmdeck_breaker_state",
        "circuit breaker state per target (1 = current)",
        router.breaker_gauge,
        ("target", "state"),
    )
    observers: list[TraceObserver] = [metrics]
    if settings.otlp_endpoint:
        observers.append(OTelExporter.to_otlp(settings.otlp_endpoint))
    evaluation = EvaluationRuntime(settings, db, metrics.registry, registry)
    inbound = evaluation.identity.wrap(authenticator)
    steps: list[Step] = [
        StreamUsageFilter(),
        Authenticate(inbound),
        RecordStep(sink, observers, settings.tracing.redact),
        *policy.steps(router),
    ]
    pipeline = Pipeline(steps, terminal=Dispatcher(router))
    registry.install(pipeline, router, lambda s: Router.from_settings(s, providers, provider_ctx), Dispatcher)
    evaluation.install(pipeline, observers, RouteEligibility(router.get))
    services: list[Service] = [sink] if isinstance(sink, Service) else []
    services.append(registry)
    services.append(policy)
    services.append(evaluation)
    return Gateway(
        settings=settings,
        db=db,
        transport=transport,
        providers=providers,
        router=router,
        authenticator=authenticator,
        sink=sink,
        pipeline=pipeline,
        serving=InferenceServing(pipeline, inbound),
        metrics=metrics,
        observers=observers,
        services=services,
        extras={"registry": registry, POLICY: policy, EVALUATION: evaluation},
    )
