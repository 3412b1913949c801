"""Fine-tuning jobs inside a gateway: built once in ``build_gateway``, reached by the routes.

    finetune = FineTuningRuntime.build(settings, db, registry, evaluation, policy_audit, principal_of,
                                       providers, provider_ctx)
    services.append(finetune)         # start(): unclaimed unfinished jobs resume; stop(): drivers stop

Routes reach it as the gateway's ``finetune`` field (:func:`lmdeck.app.services.fine_tuning_of`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from lmdeck.db import Database
from lmdeck.db.claims import WorkClaims
from lmdeck.evaluation.runs.runner import EvalRunner
from lmdeck.finetune.jobs.evaluate import AdapterEvaluation
from lmdeck.finetune.jobs.preparation import DataPreparer
from lmdeck.finetune.jobs.service import FineTuningService, JobDependencies, PrincipalOf
from lmdeck.finetune.jobs.stages import JobRunner, Preparer
from lmdeck.finetune.jobs.store import JobStore
from lmdeck.finetune.runners import load_runners
from lmdeck.local.catalog import ModelCatalog
from lmdeck.pipeline.chain import Pipeline
from lmdeck.policy.audit import AuditLog
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def base_models(settings: Settings) -> list[str]:
    """The local generative models a job may fine-tune (none when the local engine is off)."""
    if not settings.local.enabled:
        return []
    catalog = ModelCatalog(_model_dir(settings))
    names = []
    for name in catalog.names():
        try:
            if catalog.find(name).task == "generate":
                names.append(name)
        except LookupError:  # a directory under local.model_dir that holds no checkpoint
            continue
    return names


def job_runners(settings: Settings) -> dict[str, JobRunner]:
    """Every job runner the ``lmdeck.job_runners`` hook registers, built for ``settings.fine_tuning``
    (one that cannot be built is left out, with a warning naming why)."""
    registry = load_runners()
    runners: dict[str, JobRunner] = {}
    for name in registry.names():
        try:
            runners[name] = registry.create(name, settings.fine_tuning)
        except ConfigError as exc:
            log.warning("job runner %r is not available: %s", name, exc)
    return runners


def _model_dir(settings: Settings) -> Path | None:
    return Path(settings.local.model_dir) if settings.local.model_dir else None


class FineTuningRuntime:
    """The job service of one gateway, started and stopped with it."""

    def __init__(self, service: FineTuningService) -> None:
        self.service = service

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        registry: RegistryRuntime,
        runs: EvalRunner,
        pipeline: Pipeline,
        *,
        audit: AuditLog | None,
        principal_of: PrincipalOf,
        providers: ProviderRegistry,
        provider_ctx: ProviderContext,
        runners: Mapping[str, JobRunner] | None = None,
        preparer: Preparer | None = None,
    ) -> FineTuningRuntime:
        deps = JobDependencies(
            datasets=registry.datasets.store,
            models=registry.models,
            runners=dict(runners) if runners is not None else job_runners(settings),
            preparer=preparer or DataPreparer(registry.datasets.store, model_dir=_model_dir(settings)),
            evaluation=AdapterEvaluation(runs, pipeline, providers, provider_ctx),
            audit=audit,
            principal_of=principal_of,
            base_models=lambda: base_models(settings),
        )
        return cls(
            FineTuningService(
                JobStore(db),
                deps,
                Path(settings.data_dir),
                max_concurrent_jobs=settings.fine_tuning.max_concurrent_jobs,
                claims=WorkClaims(db, ttl_s=settings.fine_tuning.claim_ttl_s),
            )
        )

    async def start(self) -> None:
        resumed = await self.service.recover()
        if resumed:
            log.info("%d fine-tuning jobs continue here (no live process claimed them)", resumed)

    async def stop(self) -> None:
        await self.service.stop()
