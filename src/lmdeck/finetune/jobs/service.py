"""Serving class of ``/v1/fine_tuning/jobs``: create, read, cancel and resume jobs, and drive each
job through its stages off the request path.

    service = FineTuningService(store, deps, data_dir)
    job = await service.create(FineTuningJobCreate(model="demo", training_dataset="count@1"), principal)
    job.status                              # "validating_files": preparing the dataset in the background
    await service.wait(job.id)              # tests: until the job is final
    (await service.get(job.id, principal)).fine_tuned_model     # "demo-ft@1" when the gate passed

Stages: ``prepare`` (the dataset version's rows → ``train.jsonl``/``validation.jsonl`` + data card,
status ``validating_files``), ``train`` (``job.json`` written, the runner started: ``queued`` then
``running``; :class:`~lmdeck.finetune.jobs.follower.ProgressFollower` reads ``progress.jsonl`` in its
own thread), ``evaluate`` (eval runs of adapter and base, the gate) and ``register`` (a model
version with lineage) → ``succeeded``; or ``gated``, ``failed``, ``cancelled``. Every transition is
saved, so a restarted gateway picks each unfinished job up where it was (:meth:`recover`).

With ``claims`` (:class:`~lmdeck.db.claims.WorkClaims`, kind ``fine_tuning_job``), processes sharing the
store drive each job in one of them: the one that claims it. The service claims the jobs it creates
or resumes, renews its claims every ``ttl_s / 2`` seconds, releases each when its driver ends, and
at :meth:`recover` and each renewal adopts the unfinished jobs whose claim is absent or expired (their
process died or stopped). A driver whose claim another process took is stopped (its worker trains on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from lmdeck.db.claims import WorkClaims
from lmdeck.evaluation.runs.gate import GateError
from lmdeck.finetune.gate import check_gate, judge
from lmdeck.finetune.jobs.evaluate import AdapterEvaluation, EvaluationFailed
from lmdeck.finetune.jobs.follower import Ending, ProgressFollower, follow
from lmdeck.finetune.jobs.registration import register_adapter
from lmdeck.finetune.jobs.slots import TrainingSlots
from lmdeck.finetune.jobs.stages import JobRunner, Prepared, Preparer
from lmdeck.finetune.jobs.store import JobRecord, JobStore, RunnerState, new_id
from lmdeck.finetune.training.spec import JobDir, TrainingSpec
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.ownership import Owner, check_add, check_read, may_change
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.protocol.fine_tuning import (
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEventList,
    FineTuningJobList,
    JobError,
    JobProgress,
)
from lmdeck.protocol.registry import DatasetRow
from lmdeck.registry.datasets import DatasetStore, dataset_not_found
from lmdeck.registry.model_registry import ModelRegistry

log = logging.getLogger(__name__)

PrincipalOf = Callable[[str], Principal | None]

#: The kind of a job's work claim.
CLAIM_KIND = "fine_tuning_job"


@dataclass
class JobDependencies:
    """What the service drives a job with: the registry's datasets and models, the runners by name,
    the preparer, the evaluate stage, the audit trail and how to find a job creator's key again."""

    datasets: DatasetStore
    models: ModelRegistry
    runners: Mapping[str, JobRunner]
    preparer: Preparer
    evaluation: AdapterEvaluation
    audit: AuditLog | None
    principal_of: PrincipalOf
    base_models: Callable[[], list[str]]


def not_found(job_id: str) -> APIError:
    return APIError(
        404,
        f"no fine-tuning job {job_id!r} for this key's team: list them with `lmdeck fine-tuning list`",
        param="fine_tuning_job_id",
        code="fine_tuning_job_not_found",
    )


class FineTuningService:
    """Jobs of one gateway (see the module docs)."""

    def __init__(
        self,
        store: JobStore,
        deps: JobDependencies,
        data_dir: Path,
        *,
        max_concurrent_jobs: int = 1,
        claims: WorkClaims | None = None,
    ) -> None:
        self.store = store
        #: Who drives which job when processes share the store; None: this process drives every job.
        self.claims = claims
        self.deps = deps
        #: Training workers at once (``fine_tuning.max_concurrent_jobs``); the others wait in ``queued``.
        self.slots = TrainingSlots(max_concurrent_jobs)
        self.jobs_dir = data_dir / "finetune" / "jobs"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Jobs claimed by create or resume and not yet spawned: adoption leaves them alone.
        self._claiming: set[str] = set()
        self._releases: set[asyncio.Task[None]] = set()
        self._tending = (
            Poller(
                self._tend,
                interval=claims.ttl_s / 2,
                name="lmdeck-fine-tuning-claims",
                log=log,
                failure=f"renewing or adopting fine-tuning jobs failed; retrying in {claims.ttl_s / 2:g}s",
            )
            if claims is not None
            else None
        )

    # -- the API --------------------------------------------------------------------------------

    async def create(self, request: FineTuningJobCreate, principal: Principal) -> FineTuningJob:
        """Check the request against what exists (base model, datasets, runner, gate), record the job and
        start preparing it. 400 for a bad request, 404 for a dataset the caller may not read."""
        # The base models are listed from local.model_dir: file system reads, kept off the event loop.
        await anyio.to_thread.run_sync(self._check, request, principal)
        await anyio.to_thread.run_sync(self._check_register_as, request.model_name(), principal)
        for field, ref in (
            ("training_dataset", request.training_dataset),
            ("regression_dataset", request.regression_dataset),
        ):
            if ref is not None:
                await anyio.to_thread.run_sync(self._dataset_version, ref, principal, field)
        now = time.time()
        job_id = new_id("ftjob")
        hp = request.hyperparameters
        if request.seed is not None:
            hp = hp.model_copy(update={"seed": request.seed})
            request = request.model_copy(update={"hyperparameters": hp})
        job = FineTuningJob(
            id=job_id,
            created_at=int(now),
            model=request.model,
            status="validating_files",
            hyperparameters=hp.model_dump(mode="json"),
            seed=hp.seed,
            training_file=request.training_dataset,
            metadata=request.metadata,
            method={"type": "supervised", "lora": hp.model_dump(mode="json")},
            training_dataset=request.training_dataset,
            regression_dataset=request.regression_dataset,
            register_as=request.model_name(),
            runner=request.runner,
            team_id=principal.team_id,
            created_by=principal.actor,
        )
        record = JobRecord(job, request, principal.key_id, RunnerState(job_dir=str(self.jobs_dir / job_id)))
        self._claiming.add(job_id)
        try:
            await self._claim(job_id)  # before it is stored: no other process can adopt it in between
            await anyio.to_thread.run_sync(self.store.create, record)
            await self._event(
                record, f"Created fine-tuning job {job_id}: {request.model} on {request.training_dataset}"
            )
            await self._audit(
                principal.actor, "fine_tuning.job.created", record, {"request": request.model_dump(mode="json")}
            )
            self._spawn(record, principal)
        finally:
            self._claiming.discard(job_id)
        return job

    async def listing(self, principal: Principal, *, limit: int, after: str | None) -> FineTuningJobList:
        records, more = await anyio.to_thread.run_sync(
            lambda: self.store.listing(
                team_id=principal.team_id,
                key_id=principal.key_id,
                everyone=principal.at_least("admin"),
                limit=limit,
                after=after,
            )
        )
        return FineTuningJobList(data=[r.job for r in records], has_more=more)

    async def visible(self, job_id: str, principal: Principal) -> JobRecord:
        record = await anyio.to_thread.run_sync(self.store.get, job_id)
        if record is None or not record.visible_to(principal.team_id, principal.key_id, principal.at_least("admin")):
            raise not_found(job_id)
        return record

    async def get(self, job_id: str, principal: Principal) -> FineTuningJob:
        return (await self.visible(job_id, principal)).job

    async def events(
        self, job_id: str, principal: Principal, *, limit: int, after: str | None
    ) -> FineTuningJobEventList:
        await self.visible(job_id, principal)
        events, more = await anyio.to_thread.run_sync(lambda: self.store.events(job_id, limit=limit, after=after))
        return FineTuningJobEventList(data=events, has_more=more)

    async def checkpoints(
        self, job_id: str, principal: Principal, *, limit: int, after: str | None
    ) -> FineTuningJobCheckpointList:
        await self.visible(job_id, principal)
        data, more = await anyio.to_thread.run_sync(lambda: self.store.checkpoints(job_id, limit=limit, after=after))
        return FineTuningJobCheckpointList(
            data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
        )

    async def cancel(self, job_id: str, principal: Principal) -> FineTuningJob:
        """Stop a job that is not final (its worker stops at the next step; a later ``resume`` continues
        from its newest checkpoint); 409 for a final job."""
        record = await self.visible(job_id, principal)
        if record.final:
            raise APIError(
                409, f"fine-tuning job {job_id} is already {record.job.status}", code="fine_tuning_job_final"
            )
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
        runner = self.deps.runners.get(record.job.runner)
        if runner is not None and record.runner.handle is not None:
            await anyio.to_thread.run_sync(runner.cancel, record.runner.handle)
        fresh = await anyio.to_thread.run_sync(self.store.get, job_id)
        record = fresh or record
        self._finish(record, "cancelled")
        await anyio.to_thread.run_sync(self.store.save, record)
        await self._event(record, "Job cancelled", level="warn")
        await self._audit(principal.actor, "fine_tuning.job.cancelled", record)
        self._signal(job_id)
        return record.job

    async def resume(self, job_id: str, principal: Principal) -> FineTuningJob:
        """Take a failed or cancelled job back to work from where it stopped (its newest checkpoint for
        training); 409 for a job that runs, succeeded or was gated."""
        record = await self.visible(job_id, principal)
        if record.job.status not in ("failed", "cancelled"):
            raise APIError(
                409,
                f"fine-tuning job {job_id} is {record.job.status}: only a failed or cancelled job resumes",
                code="fine_tuning_job_not_resumable",
            )
        running = self._tasks.get(job_id)
        runner = self.deps.runners.get(record.job.runner)
        handle = record.runner.handle
        worker_alive = (
            runner is not None
            and handle is not None
            and await anyio.to_thread.run_sync(runner.state, handle) == "running"
        )
        stopping = APIError(
            409,
            f"fine-tuning job {job_id} is still stopping: resume it once its worker has exited",
            code="fine_tuning_job_stopping",
        )
        if (running is not None and not running.done()) or worker_alive:
            raise stopping
        self._claiming.add(job_id)
        try:
            if not await self._claim(job_id):
                raise APIError(
                    409,
                    f"fine-tuning job {job_id} is still driven by another gateway process: resume it once that "
                    "process lets it go (at once when it stops; within fine_tuning.claim_ttl_s when it died)",
                    code="fine_tuning_job_stopping",
                )
            record.job.status = "queued" if record.job.progress.stage != "prepare" else "validating_files"
            record.job.error = None
            record.job.finished_at = None
            await anyio.to_thread.run_sync(lambda: self.store.save(record, reopen=True))
            await self._event(record, f"Job resumed at stage {record.job.progress.stage}")
            await self._audit(principal.actor, "fine_tuning.job.resumed", record)
            self._spawn(record, principal)
        finally:
            self._claiming.discard(job_id)
        return record.job

    async def wait(self, job_id: str, timeout: float | None = None) -> FineTuningJob:
        """Until the job is final (tests, the flywheel); the job as it ended."""
        with anyio.fail_after(timeout):
            while True:
                record = await anyio.to_thread.run_sync(self.store.get, job_id)
                if record is None:
                    raise not_found(job_id)
                if record.final:
                    return record.job
                event = self._done.setdefault(job_id, asyncio.Event())
                try:
                    with anyio.move_on_after(1.0):
                        await event.wait()
                finally:
                    event.clear()

    # -- lifetime -------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Pick up every job a previous process left unfinished and no live process claims (each through
        its stage's start), then keep claims and adopt every ``ttl_s / 2`` seconds; how many now."""
        self._loop = asyncio.get_running_loop()
        adopted = await self._adopt()
        if self._tending is not None:
            self._tending.start()
        return adopted

    async def _adopt(self) -> int:
        adopted = 0
        for record in await anyio.to_thread.run_sync(self.store.unfinished):
            if record.id in self._tasks or record.id in self._claiming:
                continue
            if self.claims is not None:
                fresh = await anyio.to_thread.run_sync(self._claim_unfinished, record.id)
                if fresh is None or record.id in self._tasks or record.id in self._claiming:
                    continue
                record = fresh
            principal = self.deps.principal_of(record.key_id) if record.key_id else None
            if principal is None:
                await self._fail(record, "creator_gone", "the key that created the job no longer exists")
                if self.claims is not None:
                    await anyio.to_thread.run_sync(self.claims.release, CLAIM_KIND, record.id)
                continue
            await self._event(record, f"Gateway restarted: job continues at stage {record.job.progress.stage}")
            self._spawn(record, principal)
            adopted += 1
        return adopted

    def _claim_unfinished(self, job_id: str) -> JobRecord | None:
        """The job as stored once claimed, or None: claimed by a live process, or final meanwhile."""
        assert self.claims is not None
        return self.claims.adopt(CLAIM_KIND, job_id, self.store.get, lambda record: record.final)

    async def _claim(self, job_id: str) -> bool:
        return self.claims is None or await anyio.to_thread.run_sync(self.claims.claim, CLAIM_KIND, job_id)

    async def _tend(self) -> None:
        """Renew the claims of the jobs driven here; stop the drivers whose claim another process took;
        adopt what no live process claims."""
        claims = self.claims
        assert claims is not None
        running = [job_id for job_id, task in self._tasks.items() if not task.done()]

        def renew() -> set[str]:
            # A claim found missing (released by a driver that ended just before a resume) is taken again.
            return {i for i in claims.renew(CLAIM_KIND, running) if not claims.claim(CLAIM_KIND, i)}

        for job_id in await anyio.to_thread.run_sync(renew):
            task = self._tasks.get(job_id)
            if task is not None:
                log.warning("fine-tuning job %s: another process claimed it; it is no longer driven here", job_id)
                task.cancel()
        await self._adopt()

    async def stop(self) -> None:
        """Stop driving jobs (their workers keep training; :meth:`recover` follows them again) and
        release their claims, so that another process adopts them at once."""
        if self._tending is not None:
            await self._tending.stop()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._releases:
            await asyncio.gather(*list(self._releases), return_exceptions=True)

    # -- stages ---------------------------------------------------------------------------------

    def _spawn(self, record: JobRecord, principal: Principal) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.create_task(self._drive(record.id, principal), name=f"fine-tuning-{record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(lambda done: self._forget(record.id, done))

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        """Drop a finished driver and release its claim, unless a newer one (a resume) took its place."""
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            if self.claims is not None and job_id not in self._claiming:
                release = asyncio.ensure_future(self._release(job_id))
                self._releases.add(release)
                release.add_done_callback(self._releases.discard)

    async def _release(self, job_id: str) -> None:
        assert self.claims is not None
        try:
            await asyncio.to_thread(self.claims.release, CLAIM_KIND, job_id)
        except Exception:
            log.exception(
                "fine-tuning job %s: releasing its claim failed; it expires in %gs", job_id, self.claims.ttl_s
            )

    async def _drive(self, job_id: str, principal: Principal) -> None:
        record = await anyio.to_thread.run_sync(self.store.get, job_id)
        if record is None:
            return
        try:
            if record.job.progress.stage == "prepare":
                await self._prepare(record, principal)
            if record.job.progress.stage == "train":
                await self._train(record)
                record = (await anyio.to_thread.run_sync(self.store.get, job_id)) or record
                if record.final:
                    return
            if record.job.progress.stage in ("evaluate", "register"):
                await self._evaluate(record, principal)
        except asyncio.CancelledError:
            raise
        except StageError as exc:
            await self._fail(record, exc.code, str(exc))
        except Exception as exc:
            log.exception("fine-tuning job %s failed", job_id)
            await self._fail(record, "internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            self._signal(job_id)

    async def _prepare(self, record: JobRecord, principal: Principal) -> None:
        job_dir = await anyio.to_thread.run_sync(self.job_dir, record)
        request = record.request
        rows = await anyio.to_thread.run_sync(self._rows, request.training_dataset, principal)
        owner = await anyio.to_thread.run_sync(self.deps.datasets.owner, request.training_dataset.partition("@")[0])
        keep_card = owner is not None and may_change(principal, owner)
        try:
            prepared: Prepared = await anyio.to_thread.run_sync(
                lambda: self.deps.preparer(
                    rows,
                    request.prep,
                    base_model=request.model,
                    dataset=request.training_dataset,
                    directory=job_dir / "data",
                    keep_card=keep_card,
                )
            )
        except ValueError as exc:
            raise StageError(
                "invalid_training_dataset", f"{request.training_dataset} cannot be trained on: {exc}"
            ) from None
        if prepared.card.train == 0:
            raise StageError(
                "invalid_training_dataset", f"{request.training_dataset} left no training example after preparation"
            )
        validation_ref = None
        if prepared.validation_rows:
            version, _ = await anyio.to_thread.run_sync(
                lambda: self.deps.datasets.create(
                    f"{record.id}-validation",
                    prepared.validation_rows,
                    actor=principal.actor,
                    description=f"held-out split of {request.training_dataset} for fine-tuning job {record.id}",
                    source={"kind": "fine_tuning", "job": record.id, "dataset": request.training_dataset},
                    owner=Owner(record.team_id),
                )
            )
            validation_ref = version.ref
        spec = TrainingSpec(
            job_id=record.id,
            base_model=request.model,
            base_model_dir=str(prepared.base_model_dir),
            train_file=str(prepared.train_file),
            validation_file=str(prepared.validation_file),
            hyperparameters=request.hyperparameters,
            max_length=max(8, request.prep.max_tokens),
        )
        await anyio.to_thread.run_sync(JobDir(job_dir).write_spec, spec)
        record.job.data_card = prepared.card
        record.job.validation_dataset = validation_ref
        record.job.validation_file = str(prepared.validation_file)
        record.job.result_files = [str(prepared.train_file), str(prepared.validation_file)]
        record.job.status = "queued"
        record.job.progress = JobProgress(stage="train")
        await anyio.to_thread.run_sync(self.store.save, record)
        card = prepared.card
        await self._event(
            record,
            f"Prepared {card.rows_in} rows: {card.train} for training, {card.validation} held out"
            + (f" ({validation_ref})" if validation_ref else ""),
            data={"train": card.train, "validation": card.validation, "dropped": card.dropped},
        )

    async def _train(self, record: JobRecord) -> None:
        """Start (or find again) the worker and wait until the follower has seen it end."""
        runner = self.deps.runners[record.job.runner]
        job_dir = await anyio.to_thread.run_sync(self.job_dir, record)
        alive = (
            record.runner.handle is not None
            and (await anyio.to_thread.run_sync(runner.state, record.runner.handle)) == "running"
        )
        if not alive and not self.slots.free:
            await self._event(
                record,
                f"Queued for a training slot: {self.slots.running} of {self.slots.limit} in use "
                "(fine_tuning.max_concurrent_jobs)",
            )
        async with self.slots.held(force=alive):
            await self._train_in_slot(record, runner, job_dir, alive)

    async def _catch_up(self, record: JobRecord, runner: JobRunner, job_dir: Path) -> tuple[JobRecord, Ending | None]:
        """Apply what an ended worker wrote after the last line this job read (while no gateway followed
        it, say): its steps, metrics and checkpoints, and how it ended when it did. The job as stored then."""
        follower = ProgressFollower(self.store, record, runner, job_dir)

        def read() -> tuple[int, Ending | None]:
            events = follower.read()
            return len(events), follower.apply(events) if events else None

        count, ending = await anyio.to_thread.run_sync(read)
        if count:
            await self._event(record, f"Read {count} progress events the worker wrote while no gateway followed it")
        if ending == "failed":
            raise StageError("training_failed", follower.message or "the training worker failed: see worker.log")
        fresh = await anyio.to_thread.run_sync(self.store.get, record.id)
        return fresh or record, ending

    async def _train_in_slot(self, record: JobRecord, runner: JobRunner, job_dir: Path, alive: bool) -> None:
        if not alive and record.runner.handle is not None:
            record, ending = await self._catch_up(record, runner, job_dir)
            # Finished while nobody watched: on to the gate. A worker stopped from outside (``cancelled``
            # with the job not cancelled) or gone without a word trains again from its newest checkpoint.
            if ending in ("succeeded", "stopped"):
                return
        if not alive:
            # A new worker appends from where the previous one's checkpoint left off; read only what it adds.
            size = await anyio.to_thread.run_sync(_size, job_dir / "progress.jsonl")
            if size is not None:
                record.runner.progress_offset = size
            record.runner.handle = await anyio.to_thread.run_sync(runner.start, job_dir)
            record.job.status = "running"
            await anyio.to_thread.run_sync(self.store.save, record)
            await self._event(record, f"Training started on runner {runner.name} ({record.runner.handle})")
        follower = ProgressFollower(self.store, record, runner, job_dir)
        ending = await follow(follower, record.runner.handle or "", lambda: self.signal_threadsafe(record.id))
        if ending == "failed":
            raise StageError("training_failed", follower.message or "the training worker failed: see worker.log")
        if ending == "exited":
            raise StageError("worker_exited", follower.message or "the training worker exited without a result")
        if ending == "cancelled":
            await self.worker_cancelled(record.id)

    async def _evaluate(self, record: JobRecord, principal: Principal) -> None:
        request = record.request
        adapter = (await anyio.to_thread.run_sync(self.job_dir, record)) / "adapter"
        datasets = {}
        if record.job.validation_dataset:
            datasets["validation"] = record.job.validation_dataset
        if request.regression_dataset:
            datasets["regression"] = request.regression_dataset
        if not datasets:
            raise StageError(
                "nothing_to_evaluate", "the job has no held-out split and no regression dataset to gate on"
            )
        await self._event(record, "Evaluating the adapter against the base model on " + ", ".join(datasets.values()))
        try:
            pairs = await self.deps.evaluation.run(record, principal, Owner(record.team_id), datasets, adapter)
        except EvaluationFailed as exc:
            raise StageError("evaluation_failed", str(exc)) from None
        outcome = judge(request.gate, request.evaluators[0], pairs)
        record.job.gate = outcome
        if not outcome.passed:
            self._finish(record, "gated")
            await anyio.to_thread.run_sync(self.store.save, record)
            await self._event(record, "The gate refused the adapter: " + _reasons(outcome.model_dump()), level="warn")
            await self._audit(
                principal.actor, "fine_tuning.job.gated", record, {"gate": outcome.model_dump(mode="json")}
            )
            return
        record.job.progress.stage = "register"
        await anyio.to_thread.run_sync(self.store.save, record)
        version = await register_adapter(self.deps.models, record, adapter, principal)
        record.job.fine_tuned_model = f"{version.name}@{version.version}"
        self._finish(record, "succeeded")
        await anyio.to_thread.run_sync(self.store.save, record)
        await self._event(record, f"The gate passed: registered {record.job.fine_tuned_model}")
        await self._audit(
            principal.actor, "fine_tuning.job.succeeded", record, {"fine_tuned_model": record.job.fine_tuned_model}
        )

    async def worker_cancelled(self, job_id: str) -> None:
        """The worker stopped on a cancel the API did not record (a signal from outside): record it."""
        record = await anyio.to_thread.run_sync(self.store.get, job_id)
        if record is not None and not record.final:
            self._finish(record, "cancelled")
            await anyio.to_thread.run_sync(self.store.save, record)
            await self._event(record, "The training worker was stopped: job cancelled", level="warn")

    # -- helpers --------------------------------------------------------------------------------

    def job_dir(self, record: JobRecord) -> Path:
        """The job's directory, made when missing (blocking: call it in a thread from async code)."""
        path = Path(record.runner.job_dir or self.jobs_dir / record.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _check(self, request: FineTuningJobCreate, principal: Principal) -> None:
        known = self.deps.base_models()
        if request.model not in known:
            raise APIError(
                400,
                f"{request.model!r} is not a local base model (known: {', '.join(known) or 'none'}); "
                "add one under `local.models`",
                param="model",
                code="invalid_model",
            )
        if request.runner not in self.deps.runners:
            raise APIError(
                400,
                f"unknown job runner {request.runner!r} (installed: {', '.join(sorted(self.deps.runners)) or 'none'})",
                param="runner",
                code="invalid_runner",
            )
        unknown = [name for name in request.evaluators if name not in self.deps.evaluation.runner.evaluators]
        if unknown:
            raise APIError(
                400,
                f"unknown evaluator {unknown[0]!r} (known: {', '.join(self.deps.evaluation.runner.evaluators.names())})",
                param="evaluators",
                code="invalid_evaluator",
            )
        if request.prep.validation_fraction == 0 and request.regression_dataset is None:
            raise APIError(
                400,
                "nothing to gate the adapter on: keep a held-out split (prep.validation_fraction > 0) "
                "or name a regression_dataset",
                param="prep.validation_fraction",
            )
        try:
            check_gate(request.gate, request.evaluators[0])
        except GateError as exc:
            raise APIError(400, str(exc), param="gate", code="invalid_gate") from None

    def _check_register_as(self, name: str, principal: Principal) -> None:
        """Refuse now a name the adapter could not be registered into (another team's: 409/403)."""
        try:
            check_add(principal, self.deps.models.versions.owner(name), f"model {name!r}")
        except APIError as exc:
            raise _param(exc, "register_as") from None

    def _dataset_version(self, ref: str, principal: Principal, field: str) -> Any:
        name, _, version = ref.partition("@")
        check_read(principal, self.deps.datasets.owner(name), lambda: _param(dataset_not_found(name), field))
        try:
            return self.deps.datasets.version(name, version)
        except APIError as exc:
            raise _param(exc, field) from None

    def _rows(self, ref: str, principal: Principal) -> list[DatasetRow]:
        version = self._dataset_version(ref, principal, "training_dataset")
        rows: list[DatasetRow] = []
        while len(rows) < version.row_count:
            page = self.deps.datasets.rows(version.name, version.version, offset=len(rows), limit=500)
            if not page:
                break
            rows.extend(page)
        return rows

    def _finish(self, record: JobRecord, status: Any) -> None:
        record.job.status = status
        record.job.finished_at = int(time.time())
        if status == "succeeded":
            record.job.progress.stage = "done"

    async def _fail(self, record: JobRecord, code: str, message: str) -> None:
        fresh = await anyio.to_thread.run_sync(self.store.get, record.id)
        record = fresh or record
        if record.final:
            return
        record.job.error = JobError(code=code, message=message)
        self._finish(record, "failed")
        await anyio.to_thread.run_sync(self.store.save, record)
        await self._event(record, f"Job failed: {message}", level="error")

    async def _event(
        self, record: JobRecord, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        await anyio.to_thread.run_sync(lambda: self.store.add_event(record.id, message, level=level, data=data))

    async def _audit(self, actor: str, action: str, record: JobRecord, after: dict[str, Any] | None = None) -> None:
        if self.deps.audit is not None:
            await self.deps.audit.record(
                actor, action, f"fine_tuning_job:{record.id}", after={"status": record.job.status, **(after or {})}
            )

    def _signal(self, job_id: str) -> None:
        event = self._done.get(job_id)
        if event is not None:
            event.set()

    def signal_threadsafe(self, job_id: str) -> None:
        """Wake :meth:`wait` callers from another thread (the follower)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._signal, job_id)


class StageError(Exception):
    """A stage cannot go on; ``code`` and the message become the job's ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _size(path: Path) -> int | None:
    """The size of ``path`` in bytes, None when it does not exist (blocking)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _param(error: APIError, param: str) -> APIError:
    error.param = param
    return error


def _reasons(outcome: dict[str, Any]) -> str:
    reasons = []
    for name in ("validation", "regression"):
        result = outcome.get(name)
        if result:
            reasons += [f"{name}: {c['clause']}: {c['reason']}" for c in result.get("clauses", []) if not c["passed"]]
    return "; ".join(reasons) or "no clause passed"
