"""The gateway's parts, built once from the settings and shared by every request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from lmdeck.app.change_notices import change_notices, follow_changes
from lmdeck.app.leadership import LeaderElection
from lmdeck.app.routing_checks import routing_strategies
from lmdeck.cache import CacheRuntime
from lmdeck.cache import steps as cache_steps
from lmdeck.db import Database
from lmdeck.db.claims import WorkClaims
from lmdeck.db.lease import LeaderLease
from lmdeck.db.redis_link import RedisLink
from lmdeck.delivery.flags.runtime import FlagRuntime
from lmdeck.delivery.runtime import DeliveryRuntime
from lmdeck.delivery.shadow.runtime import ShadowRuntime
from lmdeck.evaluation.registry import load_evaluators
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.finetune.flywheel.service import FlywheelService
from lmdeck.finetune.jobs.runtime import FineTuningRuntime
from lmdeck.finetune.jobs.tuner import JobsTuner
from lmdeck.gateway.batches.files import FileStore
from lmdeck.gateway.batches.rows import BatchRows
from lmdeck.gateway.batches.runner import BatchRunner
from lmdeck.gateway.batches.store import BatchStore
from lmdeck.gateway.ingress.responses.serving import ResponsesServing
from lmdeck.gateway.ingress.responses.store import ResponseStore
from lmdeck.gateway.routing.breaker_redis import RedisBreakerStore
from lmdeck.gateway.routing.dispatcher import Dispatcher
from lmdeck.gateway.routing.eligibility import RouteEligibility
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.serving import InferenceServing
from lmdeck.gateway.steps import core_steps
from lmdeck.gateway.steps.compress import compression_steps
from lmdeck.gateway.steps.record import QueuedTraceSink, TraceObserver, TraceSink
from lmdeck.guardrails.moderations import ModerationServing
from lmdeck.guardrails.runtime import GuardrailRuntime
from lmdeck.monitoring.actions import ActionContext
from lmdeck.monitoring.drift.report import DriftMonitor
from lmdeck.monitoring.drift.service import DriftService
from lmdeck.monitoring.runtime import AlertRuntime
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.identity import Authenticator
from lmdeck.pipeline.order import build_pipeline, describe_order
from lmdeck.policy.at_rest import secure_data_dir
from lmdeck.policy.ratelimit_step import RateLimit
from lmdeck.policy.services import PolicyServices
from lmdeck.providers import ProviderContext, ProviderRegistry, load_providers
from lmdeck.providers.egress import EgressPolicy, check_config_egress
from lmdeck.providers.transport import Transport
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.providers.transport_traced import TracedTransport
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import RouteConfig, Settings
from lmdeck.tracing.analytics import AnalyticsPool
from lmdeck.tracing.genai_metrics import GenAIMetrics
from lmdeck.tracing.metrics import GatewayMetrics, label_target
from lmdeck.tracing.otel import OTelExporter
from lmdeck.tracing.refusals import RefusalRecorder
from lmdeck.tracing.retention import Retention
from lmdeck.tracing.retention_job import RetentionJob, run_report
from lmdeck.tracing.span_writer import SpanWriter
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store import TraceStore

log = logging.getLogger(__name__)


@runtime_checkable
class Service(Protocol):
    """Something with a lifetime: started with the app, stopped with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Gateway:
    """Everything the routes reach through ``request.app.state.gateway`` (see :mod:`lmdeck.app.services`).

    ``registry``, ``policy`` and ``evaluation`` are the services of the API routes; ``trace_store`` is
    where the traces API reads; ``analytics`` runs the spend, summary and search queries off the request
    path (its workers start with the first query); ``otel`` is the span exporter when ``otlp_endpoint`` is set;
    ``drift`` computes drift reports (and, through ``drift.monitor``, the drift signal of alert rules).
    """

    settings: Settings
    db: Database
    transport: Transport
    providers: ProviderRegistry
    router: Router
    authenticator: Authenticator
    sink: TraceSink
    pipeline: Pipeline
    serving: InferenceServing
    registry: RegistryRuntime
    policy: PolicyServices
    evaluation: EvaluationRuntime
    trace_store: TraceStore
    analytics: AnalyticsPool
    #: Stores the spans ``POST /v1/traces`` receives, off the request path.
    span_writer: SpanWriter
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    observers: list[TraceObserver] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    otel: OTelExporter | None = None
    genai_metrics: GenAIMetrics | None = None
    #: Counts and records /v1/ requests refused before routing (lmdeck.app.middleware.refused).
    refusals: RefusalRecorder | None = None
    guardrails: GuardrailRuntime | None = None
    cache: CacheRuntime | None = None
    alerts: AlertRuntime | None = None
    shadow: ShadowRuntime | None = None
    delivery: DeliveryRuntime | None = None
    flags: FlagRuntime | None = None
    drift: DriftService | None = None
    #: ``/api/flywheel/runs``: traces → dataset → fine-tuning job → release.
    flywheel: FlywheelService | None = None
    #: ``/v1/responses``: the Responses API, translated into chat, and its stored responses.
    responses: ResponsesServing | None = None
    #: ``/v1/files``: uploaded batch input files and the batches' output files.
    files: FileStore | None = None
    #: ``/v1/batches``: batches run row by row through the pipeline, in the background.
    batches: BatchRunner | None = None
    #: ``/v1/moderations``: texts judged by the guardrails.
    moderations: ModerationServing | None = None
    #: ``/v1/fine_tuning/jobs``: LoRA fine-tuning jobs, their eval gate and registration.
    finetune: FineTuningRuntime | None = None
    #: Who runs the background jobs, when the gateway was built with a leader lease.
    election: LeaderElection | None = None
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
        if self.otel is not None:
            self.otel.shutdown()
        if self.genai_metrics is not None:
            self.genai_metrics.shutdown()
        await self.router.aclose()
        await self.transport.aclose()
        self.db.dispose()
        self.started = False

    def route_configs(self) -> list[RouteConfig]:
        """Every route served now: the config file's, overlaid with those applied through the registry."""
        routes = {route.name: route.config for route in self.router.routes()}
        if self.registry.overlay is not None:
            routes.update(self.registry.overlay.routes)
        return list(routes.values())

    def readiness(self) -> list[str]:
        problems = [] if self.started else ["starting"]
        return problems + [f"local model {name!r} is loading" for name in self.router.loading()]


class SharedState:
    """The Redis link as a service: nothing to start (it connects on first use); closed with the gateway."""

    def __init__(self, link: RedisLink | None) -> None:
        self.link = link

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.close()


class StopOnly:
    """A service whose start (resuming what an earlier process left) is skipped; its stop still runs."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.service.stop()


def build_sink(settings: Settings, db: Database, spool_dir: Path | None = None) -> TraceSink:
    from lmdeck.tracing.sink import DurableTraceSink

    return DurableTraceSink.from_settings(settings, db, spool_dir=spool_dir)


def build_gateway(
    settings: Settings,
    *,
    sink: TraceSink | None = None,
    providers: ProviderRegistry | None = None,
    announce_admin_key: bool = True,
    spool_dir: Path | None = None,
    lease: LeaderLease | None = None,
    recover: bool = True,
) -> Gateway:
    """Everything the app serves, built from ``settings``.

    ``spool_dir``: this process's trace spool (default ``settings.spool_dir``; each worker of
    ``lmdeck serve --workers`` has its own). ``lease``: run the background jobs (retention, alert
    evaluation, the release controller) only while this process holds it; without one they run here.
    ``recover=False``: leave the work an earlier process left unfinished (eval runs, prompt
    optimizations, flywheel runs) alone at start, because another live process may be doing it.
    Batches and fine-tuning jobs are adopted in every process through their work claims
    (:mod:`lmdeck.db.claims`).
    """
    secure_data_dir(settings)
    db = Database(settings.store_url)
    db.migrate()
    egress = EgressPolicy.from_settings(settings)
    check_config_egress(settings, egress)
    transport = TracedTransport(AiohttpTransport(limit=1000, keepalive=30.0, egress=egress))
    providers = providers or load_providers()
    metrics = GatewayMetrics(known_route=lambda name: router.get(name) is not None)  # router is built below
    # Built before any provider: it binds the {"$secret": ...} references providers resolve.
    policy = PolicyServices.build(
        settings,
        db,
        announce_admin_key=announce_admin_key,
        egress=egress,
        default_base_url=providers.default_base_url,
    )
    # The Redis replicas share (redis.url), or None: limits, budgets, breakers and the cache stay per process.
    shared = SharedState(RedisLink.from_settings(settings, registry=metrics.registry))
    policy.share(shared.link)
    provider_ctx = ProviderContext(settings=settings, transport=transport)
    registry = RegistryRuntime(settings, db, providers, provider_ctx, credentials=policy.credentials, egress=egress)
    evaluators = load_evaluators()
    strategies = routing_strategies(evaluators, settings.data_dir)
    # One store for the first router and every rebuilt one: with Redis, every replica's breakers agree.
    breaker_store = RedisBreakerStore(shared.link) if shared.link is not None else None
    router = Router.from_settings(settings, providers, provider_ctx, breaker_store=breaker_store, strategies=strategies)
    authenticator: Authenticator = policy.keys
    sink = sink or build_sink(settings, db, spool_dir)
    if isinstance(sink, QueuedTraceSink):
        queued = sink
        metrics.gauge_from("lmdeck_spool_depth", "traces not yet in the store", lambda: {(): queued.depth})
    metrics.gauge_from(
        "lmdeck_breaker_state",
        "circuit breaker state per target (1 = current)",
        lambda: {(label_target(target), state): v for (target, state), v in router.breaker_gauge().items()},
        ("target", "state"),
    )
    refusals = RefusalRecorder(sink, metrics, per_minute=settings.tracing.refused_records_per_minute)
    observers: list[TraceObserver] = [metrics, refusals]
    otel = OTelExporter.from_settings(settings)
    genai_metrics = GenAIMetrics.from_settings(settings)
    observers.extend(o for o in (otel, genai_metrics) if o is not None)
    evaluation = EvaluationRuntime(settings, db, metrics.registry, registry, evaluators=evaluators)
    evaluation.recover = recover
    inbound = evaluation.identity.wrap(authenticator)
    delivery = DeliveryRuntime(settings, db, metrics.registry, registry, audit=policy.audit)
    registry.install(
        router,
        lambda s: Router.from_settings(s, providers, provider_ctx, breaker_store=breaker_store, strategies=strategies),
        Dispatcher,
    )
    overlay = registry.overlay
    guardrails = GuardrailRuntime.build(
        settings,
        router,
        lambda name: overlay.routes.get(name) if overlay is not None else None,
        metrics.registry,
        audit=policy.audit,
        token=evaluation.identity.token,
        team_name=policy.keys.team_name,
        applied_attachments=lambda: (registry.live.snapshot.team_guardrails, registry.live.snapshot.key_guardrails),
    )
    cache = CacheRuntime.build(settings, shared=shared.link)
    shadow = ShadowRuntime(db, metrics.registry, evaluators, token=lambda: evaluation.identity.token)
    delivery.shadow = shadow.evidence  # the controller's gate out of the shadow stage
    shadow.subscribe(delivery.events.subscribe)  # mirroring follows each release transition at once

    def route_config(name: str) -> RouteConfig | None:
        applied = overlay.routes.get(name) if overlay is not None else None
        state = router.get(name)
        return applied if applied is not None else state.config if state is not None else None

    flags = FlagRuntime(
        db,
        metrics.registry,
        audit=policy.audit,
        routes=lambda: registry.route_owners,
        poll_interval=settings.registry.poll_interval,
    )

    # Each package declares its steps with their phases; build_pipeline sorts them (lmdeck.pipeline.order).
    pipeline = build_pipeline(
        [
            *core_steps(sink, observers, settings.tracing.redact),
            *policy.steps(router, inbound),
            *flags.steps(route_config, RouteEligibility(router.get)),
            *registry.steps(),
            *evaluation.steps(RouteEligibility(router.get)),
            *delivery.steps(RouteEligibility(router.get)),
            *guardrails.steps(),
            *compression_steps(route_config),
            *cache_steps(cache, route_config),
            *shadow.steps(),
        ],
        terminal=Dispatcher(router),
    )
    log.info("pipeline: %s", describe_order(pipeline.names))
    guardrails.pipeline = pipeline
    evaluation.install(pipeline, observers)
    shadow.install(pipeline)
    observers.append(delivery.exposures)
    services: list[Service] = [sink] if isinstance(sink, Service) else []
    services.append(shared)  # started first, stopped last: every other service may use it
    # A change made here reloads the other replicas at once (Redis pub/sub); polling stays the fallback.
    changes = change_notices(shared.link)
    follow_changes(
        changes, registry=registry, policy=policy, flags=flags, delivery=delivery, shadow=shadow, evaluation=evaluation
    )
    services.append(changes)
    services.append(registry)
    services.append(policy)
    services.append(evaluation)
    services.append(delivery)
    services.append(guardrails)
    services.append(cache)
    services.append(shadow)
    services.append(flags)
    drift = DriftService(DriftMonitor(db, redact=settings.tracing.redact))
    services.append(drift)
    tracing = settings.tracing
    analytics = AnalyticsPool(
        db,
        processes=tracing.analytics_processes,
        workers=tracing.analytics_workers,
        timeout_s=tracing.analytics_timeout_s,
        max_waiting=tracing.analytics_queue,
    )
    services.append(analytics)  # stopped, its worker processes ended, with the gateway
    alerts = AlertRuntime.build(
        settings,
        db,
        audit=policy.audit,
        secrets=policy.secrets.get,
        vault=policy.vault.read if policy.vault is not None else None,
        action_context=alert_actions(router, route_config, registry, delivery, flags),
    )
    #: Jobs that act for the whole deployment, not for this process's requests: one process runs them.
    background: list[Service] = [alerts]
    span_writer = SpanWriter(db, max_pending=tracing.otlp_queue_spans)
    services.append(span_writer)
    metrics.gauge_from(
        "lmdeck_otlp_spans_pending", "spans received over OTLP, not yet stored", lambda: {(): span_writer.pending}
    )
    if tracing.retention.prune_interval_s is not None:
        background.append(
            RetentionJob(
                db,
                Retention.from_settings(tracing.retention),
                interval_s=tracing.retention.prune_interval_s,
                registry=metrics.registry,
                batch_size=tracing.retention.batch_size,
                on_run=lambda pruned: policy.audit.append(
                    "system:retention", "retention.run", "traces", after=run_report(pruned)
                ),
            )
        )
    election = None
    if lease is None:
        services.extend(background)
    else:
        delivery.run_controller = False
        election = LeaderElection(lease, [delivery.controller, *background])
        services.append(election)
    serving = InferenceServing(pipeline, inbound)
    response_store = ResponseStore(
        db,
        retention_s=settings.responses.retention_days * 86400.0,
        purge_interval_s=settings.responses.purge_interval_s,
        max_pending=settings.responses.max_pending,
    )
    services.append(response_store)
    files = FileStore(
        db, settings.data_dir / "files", max_bytes=settings.batches.max_file_bytes, max_rows=settings.batches.max_rows
    )
    batch_rows = BatchRows(
        pipeline,
        principal_of=policy.keys.principal,
        admit=RateLimit(policy.limiter, policy.keys, settings.policy).wait_admitted,
        route_kind=lambda name: config.kind if (config := route_config(name)) is not None else None,
    )
    batch_claims = WorkClaims(db, ttl_s=settings.batches.claim_ttl_s)
    batches = BatchRunner(BatchStore(db), files, batch_rows, batch_claims, concurrency=settings.batches.concurrency)
    # Last to start (they resume work through the pipeline), first to stop: batches, jobs, flywheel runs.
    # Batches start in every process: each adopts only the batches no live process claims.
    services.append(batches)
    finetune = None
    if evaluation.runs is not None:
        finetune = FineTuningRuntime.build(
            settings,
            db,
            registry,
            evaluation.runs.runner,
            pipeline,
            audit=policy.audit,
            principal_of=policy.keys.principal,
            providers=providers,
            provider_ctx=provider_ctx,
        )
        # Resumes unfinished jobs no live process claims (their evaluations run through the pipeline).
        services.append(finetune)
        policy.credentials.adapters.bind_jobs(finetune.service.store)  # whose job an adapter directory is
    tuner = JobsTuner(finetune.service) if finetune is not None else None
    flywheel = FlywheelService(db, registry.datasets, registry.models, policy.audit, tuner, releases=delivery.releases)
    services.append(flywheel if recover else StopOnly(flywheel))  # marks runs a dead process left failed
    return Gateway(
        settings=settings,
        db=db,
        transport=transport,
        providers=providers,
        router=router,
        authenticator=authenticator,
        sink=sink,
        pipeline=pipeline,
        serving=serving,
        responses=ResponsesServing(serving, response_store),
        metrics=metrics,
        observers=observers,
        registry=registry,
        policy=policy,
        evaluation=evaluation,
        trace_store=SQLTraceStore(db),
        analytics=analytics,
        services=services,
        election=election,
        otel=otel,
        genai_metrics=genai_metrics,
        refusals=refusals,
        guardrails=guardrails,
        cache=cache,
        alerts=alerts,
        shadow=shadow,
        delivery=delivery,
        flags=flags,
        span_writer=span_writer,
        drift=drift,
        flywheel=flywheel,
        files=files,
        batches=batches,
        finetune=finetune,
        moderations=ModerationServing(
            guardrails.service,
            route_config,
            sink,
            admit=RateLimit(policy.limiter, policy.keys, settings.policy).wait_admitted,
        ),
    )


def alert_actions(
    router: Router,
    route_config: Callable[[str], RouteConfig | None],
    registry: RegistryRuntime,
    delivery: DeliveryRuntime,
    flags: FlagRuntime,
) -> ActionContext:
    """What alert actions act on: the router's breakers, route weights applied through the registry,
    release rollbacks and flag kill switches."""
    from lmdeck.pipeline.principal import Principal
    from lmdeck.registry.plan import Declared

    principal = Principal(key_id="alerts", role="admin", name="lmdeck alerts")

    async def apply_route(route: RouteConfig) -> None:
        await registry.sync.apply(Declared(routes=[route]), dry_run=False, prune=False, principal=principal)

    return ActionContext(
        breakers=lambda: router.breakers,
        route_config=route_config,
        apply_route=apply_route,
        rollback_release=delivery.releases.rollback,
        disable_flag=flags.disable_flag,
    )
