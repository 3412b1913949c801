"""Running an eval: each dataset row through the gateway, concurrently, scored by every evaluator.

    runner = EvalRunner(store, sources, evaluators, inference_for)
    run = await runner.start(RunRequest(dataset="arith@1", prompt="calc@2", evaluators=["exact"]), principal, token)
    await runner.wait(run.id)
    store.get(run.id).summary["scores"]["exact"]   # {"mean": 0.93, "low": 0.86, "high": 0.97, ...}

Rows are sent ``concurrency`` at a time; results are written in batches as they come.
A row whose request fails is kept with its error and scores 0 on every evaluator (a
model that errors is not a model that answers well). The run's summary holds each
evaluator's mean with a 95% confidence interval, latency percentiles, tokens and cost.

A request naming ``runner: ray`` runs its rows on that executor instead
(:mod:`lmdeck.evaluation.runs.remote`): the same bodies, scored by :func:`score_row` with the same
evaluators, written to the store as they come back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from lmdeck.evaluation.base import Evaluator, EvaluatorContext, InferenceClient, Sample, Score
from lmdeck.evaluation.inference import EVAL_TAG
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.runs.remote import EvalJob, EvalJobRow, RunExecutor
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.evaluation.runs.summary import EVALUATOR_ERROR, summarize
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import Owner
from lmdeck.protocol import APIError
from lmdeck.protocol.evaluation import EvaluatorError, RowResult, RunRequest, split_ref
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)

_BATCH = 25


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int
    digest: str
    row_count: int


@dataclass(frozen=True)
class Row:
    input: Any
    expected: Any = None
    metadata: dict[str, Any] | None = None


class RunSources(Protocol):
    """Where a run's dataset rows and prompt versions come from (the registry); each lookup is a 404
    when the principal may not read what it names."""

    def dataset(self, name: str, version: str | None, principal: Principal) -> DatasetRef: ...

    def rows(self, ref: DatasetRef) -> list[Row]: ...

    def prompt_version(self, name: str, pointer: str | None, principal: Principal) -> int: ...

    def check_model(self, ref: str, principal: Principal) -> None: ...


#: Builds the inference client for one run: (principal's token, run) → client.
InferenceFactory = Callable[[str | None, RunRecord], InferenceClient]


class RunTokens(Protocol):
    """Issues the token a run executed out of process calls the gateway with (``ServiceIdentity``)."""

    def issue(self, principal: Principal) -> str: ...

    def revoke(self, token: str) -> None: ...


def prompt_variables(value: Any) -> dict[str, Any]:
    """A row's input as prompt variables: an object is the variables, anything else is ``input``."""
    return dict(value) if isinstance(value, dict) else {"input": value}


def messages_for(value: Any) -> list[dict[str, Any]]:
    """A row's input as chat messages: a message list as is, anything else as one user message."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return list(value)
    if isinstance(value, dict) and "messages" in value:
        return list(value["messages"])
    return [{"role": "user", "content": value if isinstance(value, str) else str(value)}]


class EvalRunner:
    """Starts runs as background tasks and keeps their progress in memory while they run."""

    def __init__(
        self,
        store: RunStore,
        sources: RunSources,
        evaluators: EvaluatorRegistry,
        inference_for: InferenceFactory,
        *,
        executors: Mapping[str, RunExecutor] | None = None,
        tokens: RunTokens | None = None,
    ) -> None:
        self.store = store
        self.sources = sources
        self.evaluators = evaluators
        self.inference_for = inference_for
        #: Where a run with ``runner`` other than ``local`` runs, by name; ``tokens`` issues their tokens.
        self.executors = dict(executors or {})
        self.tokens = tokens
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, int] = {}

    def progress(self, run_id: str) -> int | None:
        return self._progress.get(run_id)

    async def start(
        self,
        request: RunRequest,
        principal: Principal,
        token: str | None,
        owner: Owner | None = None,
        *,
        inference_for: InferenceFactory | None = None,
    ) -> RunRecord:
        """Validate the request, record the run (owned by ``owner``, default: the caller's team) and
        start it; errors here are 4xx for the caller. ``inference_for`` (default: the runner's) builds
        the client the rows are sent through: a fine-tuning job passes one that serves an adapter
        not yet registered."""
        self._executor(request)
        name, version = split_ref(request.dataset)
        dataset = await anyio.to_thread.run_sync(self.sources.dataset, name, version, principal)
        prompt_name = prompt_version = None
        if request.prompt is not None:
            prompt_name, pointer = split_ref(request.prompt)
            prompt_version = await anyio.to_thread.run_sync(
                self.sources.prompt_version, prompt_name, pointer, principal
            )
        if request.model is not None:
            await anyio.to_thread.run_sync(self.sources.check_model, request.model, principal)
        row_count = min(dataset.row_count, request.max_rows or dataset.row_count)
        rows = (await anyio.to_thread.run_sync(self.sources.rows, dataset))[:row_count]
        return await self.start_rows(
            request,
            dataset,
            rows,
            principal,
            token,
            owner,
            prompt=(prompt_name, prompt_version),
            inference_for=inference_for,
        )

    async def start_rows(
        self,
        request: RunRequest,
        dataset: DatasetRef,
        rows: list[Row],
        principal: Principal,
        token: str | None,
        owner: Owner | None = None,
        *,
        prompt: tuple[str | None, int | None] = (None, None),
        inference_for: InferenceFactory | None = None,
    ) -> RunRecord:
        """Record and start a run over ``rows`` taken from ``dataset`` (already resolved and readable
        by ``principal``): a subset, or rows whose input is already the messages to send (how a prompt
        optimization scores candidates that are not registered yet). Evaluator errors are 400s."""
        executor = self._executor(request)
        owner = owner or Owner(principal.team_id)
        specs = request.specs()
        run = RunRecord.new(
            spec={**request.model_dump(mode="json", exclude={"evaluators"}), "evaluators": [str(s) for s in specs]},
            name=request.name,
            dataset=dataset.name,
            dataset_version=dataset.version,
            dataset_digest=dataset.digest,
            prompt=prompt[0],
            prompt_version=prompt[1],
            route=request.route,
            model=request.model,
            row_count=len(rows),
            created_by=principal.actor,
            team_id=owner.team_id,
            visibility=owner.visibility,
        )
        inference = (inference_for or self.inference_for)(token, run)
        try:
            evaluators = self.evaluators.create_all(specs, EvaluatorContext(inference))
        except EvaluatorError as exc:
            raise APIError(400, str(exc), param="evaluators", code="invalid_evaluator") from None
        await anyio.to_thread.run_sync(self.store.create, run)
        self._progress[run.id] = 0
        work: Coroutine[Any, Any, None]
        if executor is None:
            work = self._run(run, request, rows, evaluators, inference)
        else:
            work = self._run_on(executor, run, request, rows, [e.name for e in evaluators], principal)
        task = asyncio.create_task(work, name=f"eval-{run.id}")
        self._tasks[run.id] = task
        task.add_done_callback(lambda _: self._forget(run.id))
        return run

    def _executor(self, request: RunRequest) -> RunExecutor | None:
        """The executor ``request.runner`` names (None: this process); a 400 naming ``runner`` or the
        option it cannot run when there is none or it refuses the request."""
        if request.runner == "local":
            return None
        executor = self.executors.get(request.runner)
        if executor is None or self.tokens is None:
            raise APIError(
                400,
                f"runner {request.runner!r} is not configured on this gateway: set "
                "`evaluation.ray_gateway_url` (and `fine_tuning.ray_address`) and install lmdeck[ray], "
                "or leave `runner` out to run in the gateway",
                param="runner",
                code="runner_not_configured",
            )
        why = executor.refusal(request.model)
        if why is not None:
            raise APIError(400, why, param="model", code="unsupported_by_runner")
        return executor

    async def _run_on(
        self,
        executor: RunExecutor,
        run: RunRecord,
        request: RunRequest,
        rows: list[Row],
        names: list[str],
        principal: Principal,
    ) -> None:
        """Run the rows on ``executor``, writing results as they come; the run ends as its job does."""
        assert self.tokens is not None
        results: list[RowResult] = []
        token = self.tokens.issue(principal)

        async def add(batch: list[RowResult]) -> None:
            results.extend(batch)
            self._progress[run.id] = len(results)
            await anyio.to_thread.run_sync(self.store.add_results, run.id, batch, len(results))

        try:
            tags = [EVAL_TAG, f"eval:run:{run.id}"]
            job = EvalJob(
                run_id=run.id,
                base_url=executor.base_url,
                token=token,
                evaluators=[str(s) for s in request.specs()],
                concurrency=request.concurrency,
                rows=[
                    EvalJobRow(
                        idx=i,
                        body={**self.body_for(run, request, row), "tags": tags},
                        input=row.input,
                        expected=row.expected,
                        metadata=row.metadata,
                    )
                    for i, row in enumerate(rows)
                ],
            )
            await executor.execute(job, add)
            results.sort(key=lambda r: r.idx)
            summary = summarize(results, names)
            await anyio.to_thread.run_sync(self.store.finish, run.id, "succeeded", summary)
        except asyncio.CancelledError:
            await anyio.to_thread.run_sync(self.store.finish, run.id, "cancelled", None, "stopped with the gateway")
            raise
        except Exception as exc:
            log.warning("eval run %s on %s failed: %s", run.id, executor.name, exc)
            await anyio.to_thread.run_sync(self.store.finish, run.id, "failed", None, f"{type(exc).__name__}: {exc}")
        finally:
            self.tokens.revoke(token)

    def _forget(self, run_id: str) -> None:
        self._tasks.pop(run_id, None)
        self._progress.pop(run_id, None)

    async def wait(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    def body_for(self, run: RunRecord, request: RunRequest, row: Row) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.route or ""}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if run.prompt is not None:
            body["prompt"] = {
                "name": run.prompt,
                "version": run.prompt_version,
                "variables": prompt_variables(row.input),
            }
            body["messages"] = []
        else:
            body["messages"] = messages_for(row.input)
        return body

    async def _row(
        self,
        idx: int,
        row: Row,
        run: RunRecord,
        request: RunRequest,
        evaluators: list[Evaluator],
        inference: InferenceClient,
    ) -> RowResult:
        return await score_row(idx, row, self.body_for(run, request, row), evaluators, inference)

    async def _run(
        self,
        run: RunRecord,
        request: RunRequest,
        rows: list[Row],
        evaluators: list[Evaluator],
        inference: InferenceClient,
    ) -> None:
        results: list[RowResult] = []
        pending: list[RowResult] = []
        semaphore = asyncio.Semaphore(request.concurrency)
        tasks: list[asyncio.Task[None]] = []

        async def one(idx: int, row: Row) -> None:
            async with semaphore:
                outcome = await self._row(idx, row, run, request, evaluators, inference)
            results.append(outcome)
            pending.append(outcome)
            self._progress[run.id] = len(results)

        async def flush() -> None:
            batch = pending[:]
            pending.clear()
            await anyio.to_thread.run_sync(self.store.add_results, run.id, batch, len(results))

        try:
            tasks.extend(asyncio.create_task(one(i, row)) for i, row in enumerate(rows))
            for finished in asyncio.as_completed(tasks):
                await finished
                if len(pending) >= _BATCH:
                    await flush()
            await flush()
            results.sort(key=lambda r: r.idx)
            summary = summarize(results, [e.name for e in evaluators])
            await anyio.to_thread.run_sync(self.store.finish, run.id, "succeeded", summary)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await anyio.to_thread.run_sync(self.store.finish, run.id, "cancelled", None, "stopped with the gateway")
            raise
        except Exception as exc:
            log.exception("eval run %s failed", run.id)
            await anyio.to_thread.run_sync(self.store.finish, run.id, "failed", None, f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


async def score_row(
    idx: int, row: Row, body: dict[str, Any], evaluators: list[Evaluator], inference: InferenceClient
) -> RowResult:
    """Send one row's chat ``body`` and score the reply with every evaluator (how every runner scores a row).

    A failed request keeps its error and scores 0 on every evaluator.
    """
    result = RowResult(idx=idx, input=row.input, expected=row.expected)
    try:
        reply = await inference.chat(body, tags=[f"eval:row:{idx}"])
    except (APIError, UpstreamError) as exc:
        result.error = f"{exc.status} {exc}"
    except Exception as exc:
        log.warning("eval row %d failed", idx, exc_info=exc)
        result.error = f"{type(exc).__name__}: {exc}"
    if result.error is not None:
        result.scores = {e.name: Score(0.0, label="error", explanation=result.error).to_dict() for e in evaluators}
        return result
    result.output = reply.text
    result.latency_ms = reply.latency_ms
    result.input_tokens = reply.input_tokens
    result.output_tokens = reply.output_tokens
    result.cost = reply.cost
    result.trace_id = reply.trace_id
    sample = Sample(reply.text, expected=row.expected, input=row.input, metadata=row.metadata or {})
    for evaluator in evaluators:
        result.scores[evaluator.name] = (await score_safely(evaluator, sample)).to_dict()
    return result


async def score_safely(evaluator: Evaluator, sample: Sample) -> Score:
    """The evaluator's score, or an unscored result naming the error (one bad row never stops a run)."""
    try:
        return await evaluator.evaluate(sample)
    except Exception as exc:
        return Score(None, label=EVALUATOR_ERROR, explanation=f"{type(exc).__name__}: {exc}"[:500])
