"""Serving class of ``/api/registry/prompts/{name}/optimize``: a bootstrap few-shot and instruction search.

    optimizer = PromptOptimizer(OptimizationStore(db), prompts, runner, audit)
    record = await optimizer.start("adder", OptimizeRequest(dataset="sums@1", evaluators=["exact"]), principal, token)
    await optimizer.wait(record.id)
    (await optimizer.get("adder", record.id, principal)).result["registered"]    # {"version": 3, ...} or None

A search, in the background after ``start`` answers:

1. the dataset's rows that the prompt renders are split (seeded) into training rows and held-out rows;
2. with demonstrations wanted, the original prompt runs on the training rows (the *bootstrap* run): a
   row it gets right (every evaluator 1) lends its own output as a demonstration, any other its
   expected output;
3. the original and every candidate (:func:`~lmdeck.evaluation.optimize.search.plan_candidates`) are
   scored by an eval run on the held-out rows, through the gateway's pipeline (traced with the ``eval``
   tag), each visible in ``/api/evaluation/runs``;
4. the candidate with the highest mean of the evaluators' means is registered as a new version of the
   prompt (its scores in the commit message), only when that mean beats the original's; the paired
   comparison of the two runs is kept in the result either way. No label moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from lmdeck.evaluation.base import ChatReply, EvaluatorContext
from lmdeck.evaluation.optimize.search import (
    Demo,
    Instruction,
    Plan,
    PromptShape,
    answer_text,
    instruction_variants,
    plan_candidates,
    spec_for,
    split_rows,
    user_text,
)
from lmdeck.evaluation.optimize.store import OptimizationStore, new_optimization_id
from lmdeck.evaluation.runs.compare import compare_runs
from lmdeck.evaluation.runs.runner import DatasetRef, EvalRunner, Row, prompt_variables
from lmdeck.evaluation.runs.store import RunRecord
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol import APIError
from lmdeck.protocol.evaluation import EvaluatorError, RunRequest, split_ref
from lmdeck.protocol.optimization import OptimizationProgress, OptimizationRecord, OptimizeRequest
from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptRenderError, PromptTemplate, PromptTemplateError
from lmdeck.registry.labels import LATEST
from lmdeck.registry.prompt_registry import PromptRegistry

log = logging.getLogger(__name__)

#: Training rows the bootstrap run scores (and demonstrations are drawn from), at most.
POOL_SIZE = 64


@dataclass
class _Task:
    """What the background search needs, fixed when it starts."""

    record: OptimizationRecord
    request: OptimizeRequest
    principal: Principal
    token: str | None
    dataset: DatasetRef
    route: str
    original: PromptVersionSpec
    shape: PromptShape
    variables: list[dict[str, Any]]
    rows: list[Row]
    heldout: list[int]
    pool: list[int]
    plans: list[Plan]


@dataclass
class _Scored:
    """A candidate's eval run and the mean of its evaluators' means."""

    label: str
    run: RunRecord
    mean: float
    spec: PromptVersionSpec
    plan: Plan | None = None
    demos: tuple[Demo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        summary = self.run.summary or {}
        out: dict[str, Any] = {
            "candidate": self.label,
            "run": self.run.id,
            "mean": self.mean,
            "scores": {k: v.get("mean") for k, v in (summary.get("scores") or {}).items()},
            "errors": summary.get("errors", 0),
        }
        if self.plan is not None:
            out["instruction"] = {"text": self.plan.instruction.text, "source": self.plan.instruction.source}
            out["demos"] = [{"row": d.row, "source": d.source} for d in self.demos]
        return out


def objective(summary: dict[str, Any] | None) -> float:
    """The mean of a run's evaluator means (an evaluator with no scored row counts 0)."""
    scores = (summary or {}).get("scores") or {}
    means = [
        float(s["mean"]) if s.get("mean") is not None and not math.isnan(s["mean"]) else 0.0 for s in scores.values()
    ]
    return math.fsum(means) / len(means) if means else 0.0


def _render(spec: PromptVersionSpec, variables: dict[str, Any]) -> list[dict[str, Any]]:
    return PromptTemplate(spec).render_messages(variables)


class PromptOptimizer:
    """Starts optimizations as background tasks and keeps their progress in the store."""

    def __init__(self, store: OptimizationStore, prompts: PromptRegistry, runner: EvalRunner, audit: AuditLog) -> None:
        self.store = store
        self.prompts = prompts
        self.runner = runner
        self.audit = audit
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, name: str, record_id: str, principal: Principal) -> OptimizationRecord:
        await anyio.to_thread.run_sync(self.prompts.readable, name, principal)
        record = await anyio.to_thread.run_sync(self.store.get, record_id)
        if record is None or record.prompt != name:
            raise APIError(
                404,
                f"prompt {name!r} has no optimization {record_id!r}: list them with `lmdeck prompts optimizations {name}`",
                code="not_found",
            )
        return record

    async def of_prompt(self, name: str, principal: Principal, limit: int) -> list[OptimizationRecord]:
        await anyio.to_thread.run_sync(self.prompts.readable, name, principal)
        return await anyio.to_thread.run_sync(self.store.of_prompt, name, limit)

    async def wait(self, record_id: str) -> None:
        task = self._tasks.get(record_id)
        if task is not None:
            await asyncio.shield(task)

    # -- starting --------------------------------------------------------------------------------

    async def start(
        self, name: str, request: OptimizeRequest, principal: Principal, token: str | None
    ) -> OptimizationRecord:
        """Check the request and start the search; every refusal here is a 4xx for the caller."""
        task = await anyio.to_thread.run_sync(self._prepare, name, request, principal, token)
        await anyio.to_thread.run_sync(self.store.create, task.record)
        await anyio.to_thread.run_sync(
            lambda: self.audit.append(
                principal.actor,
                "prompt.optimization.started",
                f"prompt:{name}",
                after={"id": task.record.id, "from_version": task.record.from_version, "dataset": task.record.dataset},
            )
        )
        job = asyncio.create_task(self._search(task), name=f"optimize-{task.record.id}")
        self._tasks[task.record.id] = job
        job.add_done_callback(lambda _: self._tasks.pop(task.record.id, None))
        return task.record

    def _prepare(self, name: str, request: OptimizeRequest, principal: Principal, token: str | None) -> _Task:
        """Everything checked before the search starts (blocking: registry and dataset reads)."""
        self.prompts.changeable(name, principal)
        self.prompts.check_traffic(name, {LATEST}, principal, f"adding a version to prompt {name!r}")
        compiled = self.prompts.compiled(name, principal, request.label, request.version)
        original = compiled.version.spec
        route = request.route or original.route
        if route is None:
            raise APIError(
                400,
                f"prompt {name!r} v{compiled.version.version} is bound to no route: give `route`, the model to optimize for",
                param="route",
                code="missing_route",
            )
        try:  # evaluators are built again for each run; here only to refuse a bad one before starting
            self.runner.evaluators.create_all(request.specs(), EvaluatorContext(_NoCalls()))
        except EvaluatorError as exc:
            raise APIError(400, str(exc), param="evaluators", code="invalid_evaluator") from None
        dataset_name, pointer = split_ref(request.dataset)
        dataset = self.runner.sources.dataset(dataset_name, pointer, principal)
        variables: list[dict[str, Any]] = []
        rows: list[Row] = []
        for row in self.runner.sources.rows(dataset):
            try:
                compiled.template.render_messages(prompt_variables(row.input))
            except PromptRenderError:
                continue  # a row the prompt cannot take is not evidence for or against a candidate
            variables.append(prompt_variables(row.input))
            rows.append(row)
        if len(rows) < 2:
            raise APIError(
                400,
                f"dataset {dataset.name}@{dataset.version} has {len(rows)} row(s) whose input prompt {name!r} renders: "
                "an optimization needs at least 2 (some to draw demonstrations from, some to score)",
                param="dataset",
                code="dataset_too_small",
            )
        split = split_rows(len(rows), holdout=request.holdout, seed=request.seed)
        heldout = list(split.heldout[: request.max_eval_rows])
        pool = [i for i in split.train if answer_text(rows[i].expected) is not None][:POOL_SIZE]
        if request.demos and not pool:
            raise APIError(
                400,
                f"no training row of {dataset.name}@{dataset.version} has an expected output to demonstrate: "
                "add `expected` to the rows or ask for `demos: 0`",
                param="demos",
                code="no_demonstrations",
            )
        shape = PromptShape.of(original)
        instructions = instruction_variants(shape.instruction, request.instructions)
        for instruction in instructions:
            _check_instruction(shape, instruction, original)
        plans = plan_candidates(
            instructions, pool_size=len(pool), n=request.candidates, k=request.demos, seed=request.seed
        )
        if not plans:
            raise APIError(
                400,
                "nothing to search: ask for demonstrations (`demos` > 0) or give `instructions`",
                code="empty_search",
            )
        total = (1 if request.demos else 0) + 1 + len(plans)
        record = OptimizationRecord(
            id=new_optimization_id(),
            prompt=name,
            from_version=compiled.version.version,
            dataset=f"{dataset.name}@{dataset.version}",
            status="running",
            request=request.model_dump(mode="json"),
            progress=OptimizationProgress(done=0, total=total),
            created_at=round(time.time(), 6),
            created_by=principal.actor,
        )
        return _Task(
            record, request, principal, token, dataset, route, original, shape, variables, rows, heldout, pool, plans
        )

    # -- the search ------------------------------------------------------------------------------

    async def _run(self, task: _Task, label: str, indices: Sequence[int], spec: PromptVersionSpec) -> RunRecord:
        """One eval run of ``spec`` over the rows at ``indices``, rendered here and sent as messages."""
        rows = [Row(_render(spec, task.variables[i]), task.rows[i].expected, task.rows[i].metadata) for i in indices]
        request = task.request
        run_request = RunRequest(
            dataset=f"{task.dataset.name}@{task.dataset.version}",
            route=task.route,
            evaluators=list(request.specs()),
            name=f"optimize {task.record.id}: {label}",
            concurrency=request.concurrency,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        run = await self.runner.start_rows(run_request, task.dataset, rows, task.principal, task.token)
        await self.runner.wait(run.id)
        finished = await anyio.to_thread.run_sync(self.runner.store.get, run.id)
        if finished is None or finished.status != "succeeded":
            status = finished.status if finished else "missing"
            raise RuntimeError(f"eval run {run.id} ({label}) {status}: {finished.error if finished else ''}")
        return finished

    async def _step(self, task: _Task, stage: str, best: _Scored | None = None) -> None:
        progress = task.record.progress
        progress.done += 1
        progress.stage = stage
        if best is not None:
            progress.best = {"candidate": best.label, "mean": best.mean, "run": best.run.id}
        await anyio.to_thread.run_sync(self.store.update, task.record.id, progress)

    async def _demos(self, task: _Task) -> list[Demo]:
        """The demo pool: the bootstrap run's right answers, the rows' expected outputs elsewhere."""
        run = await self._run(task, "bootstrap", task.pool, task.original)
        results = {r.idx: r for r in await anyio.to_thread.run_sync(self.runner.store.results, run.id)}
        demos = []
        for position, i in enumerate(task.pool):
            user = user_text(_render(task.original, task.variables[i]))
            result = results.get(position)
            values = [result.value(k) for k in result.scores] if result is not None and result.error is None else []
            if result is not None and result.output and values and all(v is not None and v >= 1.0 for v in values):
                demos.append(Demo(user, result.output, "bootstrapped", i))
            else:
                demos.append(Demo(user, answer_text(task.rows[i].expected) or "", "labeled", i))
        await self._step(task, "bootstrap")
        return demos

    async def _search(self, task: _Task) -> None:
        record = task.record
        try:
            result = await self._explore(task)
        except asyncio.CancelledError:
            await anyio.to_thread.run_sync(
                lambda: self.store.finish(record.id, "cancelled", record.progress, None, "stopped with the gateway")
            )
            raise
        except Exception as exc:
            log.exception("prompt optimization %s failed", record.id)
            error = str(exc) if isinstance(exc, APIError) else f"{type(exc).__name__}: {exc}"
            await anyio.to_thread.run_sync(lambda: self.store.finish(record.id, "failed", record.progress, None, error))
            return
        record.progress.stage = "finished"
        await anyio.to_thread.run_sync(lambda: self.store.finish(record.id, "succeeded", record.progress, result))
        await anyio.to_thread.run_sync(
            lambda: self.audit.append(
                task.principal.actor,
                "prompt.optimization.finished",
                f"prompt:{record.prompt}",
                after={"id": record.id, "registered": result["registered"], "winner": result["winner"]},
            )
        )

    async def _explore(self, task: _Task) -> dict[str, Any]:
        demos = await self._demos(task) if task.request.demos else []
        baseline_run = await self._run(task, "original", task.heldout, task.original)
        baseline = _Scored("original", baseline_run, objective(baseline_run.summary), task.original)
        await self._step(task, "original", baseline)
        best = baseline
        scored: list[_Scored] = []
        for plan in task.plans:
            chosen = tuple(demos[p] for p in plan.demos)
            spec = spec_for(task.shape, plan.instruction, chosen, task.original)
            label = f"candidate {plan.number}"
            run = await self._run(task, label, task.heldout, spec)
            candidate = _Scored(label, run, objective(run.summary), spec, plan, chosen)
            scored.append(candidate)
            if candidate.mean > best.mean:
                best = candidate
            await self._step(task, label, best)
        winner = best if best is not baseline else None
        challenger = winner or max(scored, key=lambda s: s.mean)
        comparison = await self._compare(baseline.run, challenger.run)
        registered = await self._register(task, winner, baseline) if winner is not None else None
        return {
            "heldout_rows": len(task.heldout),
            "training_rows": len(task.rows) - len(task.heldout),
            "demo_pool": {
                "size": len(demos),
                "bootstrapped": sum(1 for d in demos if d.source == "bootstrapped"),
            },
            "baseline": baseline.to_dict(),
            "candidates": [s.to_dict() for s in scored],
            "winner": winner.label if winner is not None else None,
            "comparison": comparison,
            "registered": registered,
        }

    async def _compare(self, a: RunRecord, b: RunRecord) -> dict[str, Any]:
        rows_a = await anyio.to_thread.run_sync(self.runner.store.results, a.id)
        rows_b = await anyio.to_thread.run_sync(self.runner.store.results, b.id)
        comparison: dict[str, Any] = compare_runs(a, rows_a, b, rows_b, max_changed=0).to_dict()
        return {
            "run_a": comparison["run_a"],
            "run_b": comparison["run_b"],
            "rows": comparison["rows"],
            "changed_total": comparison["changed_total"],
            "evaluators": comparison["evaluators"],
        }

    async def _register(self, task: _Task, winner: _Scored, baseline: _Scored) -> dict[str, Any]:
        record = task.record
        scores = winner.to_dict()["scores"]
        before = baseline.to_dict()["scores"]
        shown = ", ".join(f"{k} {before.get(k, 0) or 0:.3f} -> {v or 0:.3f}" for k, v in scores.items())
        message = (
            f"prompt optimization {record.id}: {winner.label} of v{record.from_version} scored {shown} "
            f"(mean {baseline.mean:.3f} -> {winner.mean:.3f}) on {len(task.heldout)} held-out rows of {record.dataset}"
        )
        spec = winner.spec.model_copy(update={"commit_message": message})
        created = await self.prompts.create_version(record.prompt, spec, task.principal)
        return {"version": created.version, "commit_message": message, "scores": scores, "mean": winner.mean}

    async def start_service(self) -> None:
        stale = await anyio.to_thread.run_sync(
            self.store.fail_unfinished, "the gateway stopped during the optimization"
        )
        if stale:
            log.warning("%d prompt optimizations were left unfinished by a previous process", stale)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _NoCalls:
    """An inference client for building evaluators without running them (it is never called)."""

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply:
        raise RuntimeError("not for calls")

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("not for calls")


def _check_instruction(shape: PromptShape, instruction: Instruction, original: PromptVersionSpec) -> None:
    try:
        PromptTemplate(spec_for(shape, instruction, [], original))
    except PromptTemplateError as exc:
        raise APIError(
            400,
            f"the instruction {instruction.text[:80]!r} is not a valid template: {exc}",
            param="instructions",
            code="invalid_instruction",
        ) from None
