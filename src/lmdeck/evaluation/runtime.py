"""Evaluation inside a gateway: built once in ``build_gateway``, reached by the routes.

    evaluation = EvaluationRuntime(settings, db, metrics.registry, registry)
    inbound = evaluation.identity.wrap(authenticator)   # in-process callers authenticate too
    pipeline = build_pipeline([..., *evaluation.steps(eligible), ...], terminal=...)
    evaluation.install(pipeline, observers)      # online evaluation and runs, the trace observers
    services.append(evaluation)                  # started and stopped with the app

``steps`` declares the experiment steps in phase ``resolve`` (see :mod:`lmdeck.pipeline.order`):
``experiment`` before the registry's ``prompt`` (it may rewrite the prompt reference), and
``experiment-pin`` after ``prompt`` and before ``bundle`` (it pins the variant's model
version that the bundle names). Without a registry there is only ``experiment``.

Routes reach it as the gateway's ``evaluation`` field (:func:`lmdeck.app.services.evaluation_of`).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from lmdeck.db import Database
from lmdeck.evaluation.annotation.feeder import AnnotationFeeder
from lmdeck.evaluation.annotation.service import AnnotationService
from lmdeck.evaluation.experiments.exposures import ExposureRecorder
from lmdeck.evaluation.experiments.service import ExperimentService
from lmdeck.evaluation.experiments.step import ExperimentPin, ExperimentStep
from lmdeck.evaluation.experiments.store import ExperimentStore
from lmdeck.evaluation.export import EvaluationEvents, QualityMetrics
from lmdeck.evaluation.feedback.service import FeedbackService, RecentTraces
from lmdeck.evaluation.feedback.sources import add_feedback_sources
from lmdeck.evaluation.feedback.store import FeedbackStore
from lmdeck.evaluation.identity import ServiceIdentity
from lmdeck.evaluation.inference import EVAL_TAG, PipelineInference
from lmdeck.evaluation.online.observer import OnlineEvaluator
from lmdeck.evaluation.online.service import OnlineRuleService
from lmdeck.evaluation.online.store import OnlineStore
from lmdeck.evaluation.optimize.service import PromptOptimizer
from lmdeck.evaluation.optimize.store import OptimizationStore
from lmdeck.evaluation.registry import EvaluatorRegistry, load_evaluators
from lmdeck.evaluation.runs.ray_job import RayRunExecutor
from lmdeck.evaluation.runs.remote import RunExecutor
from lmdeck.evaluation.runs.runner import EvalRunner
from lmdeck.evaluation.runs.service import RunService
from lmdeck.evaluation.runs.sources import RegistrySources
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.gateway.routing.eligibility import RouteCheck, route_refusal
from lmdeck.gateway.steps.record import TraceObserver
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.annotation import AnnotationQueueSpec
from lmdeck.protocol.evaluation import ExperimentSpec, OnlineRule
from lmdeck.registry.owners import resolve_team
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.registry.snapshot import RegistrySnapshot
from lmdeck.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def _validated(kind: type[Any], items: list[dict[str, Any]], where: str) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(kind.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"evaluation.{where}[{i}].{loc}: {err['msg']} (see docs/evaluation.md)") from None
    return out


class EvaluationRuntime:
    """Eval runs, feedback, online evaluation and experiments of one gateway."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics_registry: CollectorRegistry | None,
        registry: RegistryRuntime | None = None,
        *,
        evaluators: EvaluatorRegistry | None = None,
        events: EvaluationEvents | None = None,
    ) -> None:
        from lmdeck.tracing.sql_store import SQLTraceStore

        config = settings.evaluation
        self.settings = settings
        #: False: runs and optimizations left unfinished are not marked failed at start, because other
        #: processes serving the same store may be running them (a restarted worker of ``lmdeck serve --workers``).
        self.recover = True
        self.db = db
        self.registry = registry
        self.configured_rules: list[OnlineRule] = _validated(OnlineRule, config.online_rules, "online_rules")
        self.configured_experiments: list[ExperimentSpec] = _validated(
            ExperimentSpec, config.experiments, "experiments"
        )
        self.evaluators = evaluators or load_evaluators()
        self.identity = ServiceIdentity()
        self.metrics = QualityMetrics(metrics_registry, config.feedback_names) if metrics_registry is not None else None
        if events is None and settings.otlp_traces_url:
            events = EvaluationEvents.to_otlp(settings.otlp_traces_url, settings.otlp_headers)
        self.events = events
        self.audit = AuditLog(db)
        self.recent = RecentTraces()
        self.feedback = FeedbackService(
            FeedbackStore(db),
            SQLTraceStore(db),
            self.recent,
            self.metrics,
            max_correction_bytes=config.feedback_correction_max_bytes,
        )
        self._snapshot: Callable[[], RegistrySnapshot] | None = None
        if registry is not None:
            live = registry.live
            self._snapshot = lambda: live.snapshot
        self.experiments = ExperimentService(
            ExperimentStore(db),
            self._snapshot,
            prompts=registry.prompts if registry is not None else None,
            models=registry.models if registry is not None else None,
            audit=self.audit,
            poll_interval=config.poll_interval,
            routes=(lambda: registry.route_owners) if registry is not None else None,
        )
        self.exposures = ExposureRecorder(self.experiments.store, self.metrics)
        self.annotation = AnnotationService(db, self.audit, registry.datasets if registry is not None else None)
        self.annotation_feeder = AnnotationFeeder(self.annotation.store)
        if registry is not None:
            add_feedback_sources(registry.datasets, self.feedback.store, self.annotation.store)
        self.configured_queues: list[AnnotationQueueSpec] = _validated(
            AnnotationQueueSpec, config.annotation_queues, "annotation_queues"
        )
        self.run_store = RunStore(db)
        self._pipeline: Pipeline | None = None
        self.online: OnlineEvaluator | None = None
        self.rules: OnlineRuleService | None = None
        self.runs: RunService | None = None
        self.optimizer: PromptOptimizer | None = None

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("EvaluationRuntime.install() was not called")
        return self._pipeline

    def inference_for_run(self, token: str | None, run: RunRecord) -> PipelineInference:
        return PipelineInference(
            self.pipeline,
            token,
            tags=[EVAL_TAG, f"eval:run:{run.id}"],
            metadata={"eval_run": run.id},
            model_override=run.model,
        )

    def _executors(self) -> dict[str, RunExecutor]:
        """Where runs asking for ``runner: ray`` go: a Ray cluster once ``evaluation.ray_gateway_url`` is set."""
        url = self.settings.evaluation.ray_gateway_url
        if url is None:
            return {}
        if importlib.util.find_spec("ray") is None:
            log.warning("evaluation.ray_gateway_url is set but ray is not installed: install lmdeck[ray]")
            return {}
        ray = self.settings.fine_tuning
        return {
            "ray": RayRunExecutor(
                base_url=url.rstrip("/") + "/v1",
                jobs_dir=self.settings.data_dir / "evaluation" / "ray-jobs",
                address=ray.ray_address,
                python=ray.ray_python,
                num_cpus=ray.ray_num_cpus,
            )
        }

    def steps(self, eligible: RouteCheck = route_refusal) -> list[StepDeclaration]:
        """The experiment steps, declared by phase; ``eligible`` refuses variants a route cannot serve."""
        experiment = ExperimentStep(self.experiments.running, eligible)
        if self._snapshot is None:  # no registry: no prompt or bundle step to place them by
            return [StepDeclaration(experiment, "resolve")]
        return [
            StepDeclaration(experiment, "resolve", before=("prompt",)),
            StepDeclaration(ExperimentPin(self._snapshot), "resolve", after=("prompt",), before=("bundle",)),
        ]

    def install(self, pipeline: Pipeline, observers: list[TraceObserver]) -> None:
        """Run online evaluation and eval runs through ``pipeline``, and observe its traces."""
        self._pipeline = pipeline
        inference = PipelineInference(pipeline, self.identity.token, tags=[EVAL_TAG, "eval:online"])
        self.online = OnlineEvaluator(
            OnlineStore(self.db),
            self.evaluators,
            inference,
            self.metrics,
            self.events,
            maxsize=self.settings.evaluation.queue_size,
            workers=self.settings.evaluation.workers,
            inference_for=lambda team: PipelineInference(
                pipeline, self.identity.token_for(team), tags=[EVAL_TAG, "eval:online"]
            ),
        )
        self.rules = OnlineRuleService(
            self.online.store, self.online, self.configured_rules, self.settings.evaluation.poll_interval
        )
        if self.registry is not None and self._snapshot is not None:
            runner = EvalRunner(
                self.run_store,
                RegistrySources(self.registry.datasets.store, self._snapshot),
                self.evaluators,
                self.inference_for_run,
                executors=self._executors(),
                tokens=self.identity,
            )
            self.runs = RunService(self.run_store, runner)
            self.optimizer = PromptOptimizer(OptimizationStore(self.db), self.registry.prompts, runner, self.audit)
        observers.extend([self.recent, self.exposures, self.online])

    def _start_configured(self) -> None:
        for spec in self.configured_experiments:
            if self.experiments.store.get(spec.name) is None:
                self.experiments.store.create(spec, "config")
        for queue in self.configured_queues:
            if self.annotation.store.queue(queue.name) is None:
                with self.db.engine.connect() as conn:
                    owner = Owner(resolve_team(conn, queue.team))
                self.annotation.store.save_queue(queue, owner, "config", watermark=time.time())

    async def start(self) -> None:
        if self.recover:
            stale = await anyio.to_thread.run_sync(self.run_store.fail_unfinished, "the gateway stopped during the run")
            if stale:
                log.warning("%d eval runs were left unfinished by a previous process", stale)
        await anyio.to_thread.run_sync(self._start_configured)
        if self.optimizer is not None and self.recover:
            await self.optimizer.start_service()
        await self.experiments.start()
        await self.exposures.start()
        await self.annotation_feeder.start()
        if self.online is not None and self.rules is not None:
            await self.online.start()
            await self.rules.start()

    async def stop(self) -> None:
        if self.optimizer is not None:
            await self.optimizer.stop()
        if self.runs is not None:
            await self.runs.runner.stop()
        if self.rules is not None:
            await self.rules.stop()
        if self.online is not None:
            await self.online.stop()
        await self.annotation_feeder.stop()
        await self.exposures.stop()
        await self.experiments.stop_polling()
