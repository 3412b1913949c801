"""The evaluate stage of a job: eval runs of the adapter and of the base model, then the gate.

For each dataset (the held-out split, stored as a dataset version of its own, and the regression
dataset when the job names one) two eval runs go through the gateway's pipeline as the job's
creator: one served by the base model, one by the base model with the job's adapter. The adapter
is not registered yet, so its runs carry a route override (:mod:`lmdeck.gateway.routing.override`)
instead of a registry reference::

    stage = AdapterEvaluation(runner, pipeline, providers, provider_ctx)
    pairs = await stage.run(job, principal, owner, {"validation": "ftjob-…-validation@1"}, adapter_dir)
    outcome = judge(job.request.gate, "exact", pairs)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import anyio

from lmdeck.evaluation.inference import EVAL_TAG, PipelineInference
from lmdeck.evaluation.runs.runner import EvalRunner
from lmdeck.evaluation.runs.store import RunRecord
from lmdeck.finetune.gate import RunPair
from lmdeck.finetune.jobs.store import JobRecord
from lmdeck.gateway.routing.override import close_route, single_target_route
from lmdeck.gateway.routing.state import RouteState
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.evaluation import RunRequest
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.settings import TargetConfig

log = logging.getLogger(__name__)


class EvaluationFailed(RuntimeError):
    """An eval run of the job did not finish; the message names it and why."""


def base_target(base_model: str, adapter: Path | None = None) -> TargetConfig:
    """The local target serving ``base_model``, with ``adapter`` (a PEFT adapter directory) when given."""
    # Unquantized for both runs: an adapter needs the float weights, and base and adapter are compared on one model.
    options: dict[str, str] = {"quantize": "none"}
    if adapter is not None:
        options["adapter"] = str(adapter)
    return TargetConfig(provider="local", model=base_model, timeout=600, options=options)


class AdapterEvaluation:
    """Starts and waits for the base/adapter eval run pairs of a job."""

    def __init__(
        self, runner: EvalRunner, pipeline: Pipeline, providers: ProviderRegistry, provider_ctx: ProviderContext
    ) -> None:
        self.runner = runner
        self.pipeline = pipeline
        self.providers = providers
        self.provider_ctx = provider_ctx

    def _inference(self, principal: Principal, route: RouteState, job_id: str) -> PipelineInference:
        return PipelineInference(
            self.pipeline,
            None,
            principal=principal,
            tags=[EVAL_TAG, f"fine_tuning:{job_id}"],
            metadata={"fine_tuning_job": job_id},
            route_override=route,
            request_prefix="req_ft_",
        )

    async def _one(
        self, job: JobRecord, principal: Principal, owner: Owner, dataset: str, which: str, route: RouteState
    ) -> RunRecord:
        base = job.request.model
        request = RunRequest(
            dataset=dataset,
            route=base,
            evaluators=list(job.request.evaluators),
            name=f"{job.id} {which}",
            concurrency=4,
            temperature=0.0,
        )

        def inference_for(_token: str | None, run: RunRecord) -> PipelineInference:
            client = self._inference(principal, route, job.id)
            client.tags.append(f"eval:run:{run.id}")
            client.metadata["eval_run"] = run.id
            return client

        run = await self.runner.start(request, principal, None, owner, inference_for=inference_for)
        job.runner.eval_runs[f"{dataset} {which}"] = run.id
        return run

    async def _finished(self, run: RunRecord) -> RunRecord:
        await self.runner.wait(run.id)
        done = await anyio.to_thread.run_sync(self.runner.store.get, run.id)
        if done is None or done.status != "succeeded":
            status = done.status if done is not None else "missing"
            error = done.error if done is not None else None
            raise EvaluationFailed(f"eval run {run.id} ({run.name}) is {status}: {error or 'no error recorded'}")
        return done

    async def run(
        self, job: JobRecord, principal: Principal, owner: Owner, datasets: Mapping[str, str], adapter: Path
    ) -> dict[str, RunPair]:
        """Run base and adapter on each of ``datasets`` (gated set name → ``name@version``) and
        return the finished pairs; raises :class:`EvaluationFailed` when a run does not succeed."""
        base_route = single_target_route(
            job.request.model, base_target(job.request.model), self.providers, self.provider_ctx
        )
        adapter_route = single_target_route(
            job.request.model, base_target(job.request.model, adapter), self.providers, self.provider_ctx
        )
        try:
            started: dict[str, tuple[RunRecord, RunRecord]] = {}
            for name, dataset in datasets.items():
                started[name] = (
                    await self._one(job, principal, owner, dataset, f"{name} base", base_route),
                    await self._one(job, principal, owner, dataset, f"{name} adapter", adapter_route),
                )
            pairs: dict[str, RunPair] = {}
            for name, (base_run, adapter_run) in started.items():
                base_done, adapter_done = await self._finished(base_run), await self._finished(adapter_run)
                pairs[name] = RunPair(
                    base_done,
                    await anyio.to_thread.run_sync(self.runner.store.results, base_done.id),
                    adapter_done,
                    await anyio.to_thread.run_sync(self.runner.store.results, adapter_done.id),
                )
            return pairs
        finally:
            await close_route(base_route)
            await close_route(adapter_route)
