"""Serving class of ``/api/flywheel/runs``: production traces become a dataset, a fine-tuned and gated model
version, and a release, one audited step at a time.

A run's steps (:data:`lmdeck.protocol.flywheel.STEPS`):

1. ``dataset``: a dataset version cut from the traces of ``route`` that ``from_traces`` matches, each
   row's expected output taken from a correction (feedback or annotation labels) where one was given;
2. ``fine_tune``: a fine-tuning job on that version (prepare → train → gate → register), followed
   until it ends; a job the gate refused ends the run ``gated`` with the job's evidence;
3. ``release``: with ``release`` given, a canary release of the new version on ``route`` through the
   delivery controller (the route must follow a registry alias of the model); else alias ``candidate``
   (``alias``) of the registered model moved to the new version, so ``registry:<name>@candidate`` serves it.

Each step's output is stored with the run before the next starts, and each finished step is appended
to the audit log. A failed run keeps the outputs of the steps that succeeded: :meth:`resume` runs it
again from the step that failed::

    service = FlywheelService(db, datasets, models, audit, tuner)
    plan = await service.plan(FlywheelRunRequest(route="demo", from_traces="skill=count", base="demo"), admin)
    run = await service.start(FlywheelRunRequest(route="demo", from_traces="skill=count", base="demo"), admin)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from pydantic import ValidationError

from lmdeck.db import Database
from lmdeck.delivery.machine import Action
from lmdeck.finetune.flywheel.store import FlywheelRun, FlywheelStore, StepState, run_not_found
from lmdeck.finetune.flywheel.tuner import FineTuner, JobOutcome, UnavailableTuner
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ReleaseSpec
from lmdeck.protocol.flywheel import STEPS, FlywheelRunRequest
from lmdeck.registry.catalog import actor_of, check_name
from lmdeck.registry.dataset_registry import DatasetRegistry

log = logging.getLogger(__name__)

#: Why a run a crashed or killed server left ``running`` is failed at the next start.
INTERRUPTED = "interrupted: the server running it stopped without finishing the step (crash or kill); resume the run"


class AuditTrail(Protocol):
    def append(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None) -> Any: ...


class Releases(Protocol):
    """Creates and starts canary releases (:class:`lmdeck.delivery.service.ReleaseService`)."""

    async def create(self, spec: ReleaseSpec, principal: Principal) -> dict[str, Any]: ...

    async def act(self, name: str, action: Action, *, principal: Principal | None = None) -> dict[str, Any]: ...


class AliasMover(Protocol):
    """Moves a model's alias (:meth:`lmdeck.registry.catalog.Catalog.move`)."""

    async def move(
        self,
        name: str,
        label: str,
        version: int | None,
        *,
        reason: str | None,
        principal: Principal,
        expected_version: int | None = None,
    ) -> dict[str, Any]: ...


Step = Callable[[FlywheelRun, StepState, Principal], Awaitable[None]]


class StepFailed(Exception):
    """A step ended without its output; ``status`` is the run's status (``failed`` or ``gated``)."""

    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.status = status


class FlywheelService:
    def __init__(
        self,
        db: Database,
        datasets: DatasetRegistry,
        models: AliasMover,
        audit: AuditTrail,
        tuner: FineTuner | None = None,
        *,
        releases: Releases | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = FlywheelStore(db)
        self.datasets = datasets
        self.models = models
        self.audit = audit
        self.tuner: FineTuner = tuner or UnavailableTuner()
        self.releases = releases
        self.poll_interval = poll_interval
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._steps: dict[str, Step] = {
            "dataset": self._dataset,
            "fine_tune": self._fine_tune,
            "release": self._release,
        }

    # -- lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Mark failed the runs a previous process left ``running`` (see :meth:`mark_interrupted`)."""
        interrupted = await self.mark_interrupted()
        if interrupted:
            log.warning("%d flywheel runs were interrupted by a stop without shutdown; resume them", interrupted)

    async def mark_interrupted(self) -> int:
        """Mark ``failed`` every stored ``running`` run that no task of this process drives; how many.

        A graceful stop marks its runs failed itself (:meth:`stop`); a process that crashed or was killed
        leaves them ``running`` for ever. At start this process drives no run yet, so every ``running`` run
        belongs to a process that is gone (one gateway drives the flywheel, as it drives fine-tuning jobs).
        The step that was running fails with the reason and ``resume`` continues from it.
        """
        runs = await anyio.to_thread.run_sync(self.store.running)
        marked = 0
        for run in runs:
            if run.id in self._tasks:
                continue
            step = next((s for s in run.steps if s.status == "running"), None)
            name = step.name if step is not None else self._next_step(run) or "run"
            if step is not None:
                step.finish("failed", error=INTERRUPTED)
            run.status, run.error = "failed", f"{name}: {INTERRUPTED}"
            await anyio.to_thread.run_sync(self.store.save, run)
            marked += 1
        return marked

    async def stop(self) -> None:
        """Cancel the runs in progress; they are left ``running`` in the store and resume from their step."""
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    # -- reading ---------------------------------------------------------------------------------

    def _visible(self, run: FlywheelRun, principal: Principal) -> bool:
        return principal.role == "admin" or run.team_id == principal.team_id

    async def get(self, run_id: str, principal: Principal) -> FlywheelRun:
        run = await anyio.to_thread.run_sync(self.store.get, run_id)
        if not self._visible(run, principal):
            raise run_not_found(run_id)
        return run

    async def list(self, principal: Principal, limit: int = 100) -> list[FlywheelRun]:
        admin = principal.role == "admin"
        return await anyio.to_thread.run_sync(
            lambda: self.store.list(team_id=principal.team_id, all_teams=admin, limit=limit)
        )

    async def wait(self, run_id: str) -> None:
        """Until the run's steps in progress in this process are done (tests and the CLI's --follow)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    # -- planning --------------------------------------------------------------------------------

    def _check(self, spec: FlywheelRunRequest) -> None:
        check_name("model", spec.model_name())
        check_name("dataset", spec.dataset_name())
        if spec.release is not None:
            if self.releases is None:
                raise APIError(400, "this server has no releases: leave out `release`", param="release")
            self._release_spec(spec, "fw_check", 1)

    def _release_spec(self, spec: FlywheelRunRequest, run_id: str, version: int) -> ReleaseSpec:
        """The canary release of model version ``version`` on the run's route, from ``spec.release``."""
        fixed = {"name": f"flywheel-{run_id.removeprefix('fw_')}"[:64], "route": spec.route}
        candidate = {"model": f"{spec.model_name()}@{version}"}
        try:
            return ReleaseSpec.model_validate({**(spec.release or {}), **fixed, "candidate": candidate})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise APIError(400, f"release.{where}: {first['msg']}", param="release") from None

    def _filter(self, spec: FlywheelRunRequest) -> str:
        """The trace filter a run draws with: the route's traces that ``from_traces`` matches."""
        return f"route={spec.route} {spec.from_traces}".strip()

    async def plan(self, spec: FlywheelRunRequest, principal: Principal) -> dict[str, Any]:
        """What a run of ``spec`` would do, step by step, with the number of traces matched; changes nothing."""
        self._check(spec)
        found = await self.datasets.preview(
            spec.dataset_name(),
            self._filter(spec),
            principal=principal,
            limit=spec.limit,
            corrections=spec.corrections,
            keep_uncorrected=spec.keep_uncorrected,
        )
        corrected = (
            f", {found['corrected']} with a correction from {spec.corrections}" if spec.corrections != "none" else ""
        )
        steps = [
            {
                "name": "dataset",
                "traces": found["traces"],
                "rows": found["rows"],
                "corrected": found["corrected"],
                "describe": f"cut a version of dataset {spec.dataset_name()!r} from {found['traces']} traces "
                f"matching {self._filter(spec)!r} ({found['rows']} rows{corrected})",
            },
            {
                "name": "fine_tune",
                "tuner": self.tuner.name,
                "describe": f"fine-tune {spec.base!r} on it (prepare, train, gate) and register it as "
                f"model {spec.model_name()!r}",
            },
            {
                "name": "release",
                "describe": (
                    f"start a canary release of the new version on route {spec.route!r}"
                    if spec.release is not None
                    else f"move {spec.model_name()}@{spec.alias} to the new version "
                    f"(served as registry:{spec.model_name()}@{spec.alias})"
                ),
            },
        ]
        plan: dict[str, Any] = {"object": "flywheel.plan", "request": spec.model_dump(mode="json"), "steps": steps}
        if "note" in found:
            plan["note"] = found["note"]
        if not self.tuner.available:
            plan["note"] = self.tuner.unavailable_reason
        return plan

    # -- running ---------------------------------------------------------------------------------

    async def start_run(self, spec: FlywheelRunRequest, principal: Principal) -> FlywheelRun:
        """Record a new run and start its steps in the background."""
        self._check(spec)
        run = await anyio.to_thread.run_sync(
            lambda: self.store.create(spec, team_id=principal.team_id, actor=actor_of(principal))
        )
        await self._audit(principal, "flywheel.run", run.id, {"request": spec.model_dump(mode="json")})
        self._launch(run, principal)
        return run

    async def resume(self, run_id: str, principal: Principal) -> FlywheelRun:
        """Run a failed (or interrupted) run again from the first step that did not succeed."""
        run = await self.get(run_id, principal)
        if run_id in self._tasks:
            raise APIError(409, f"flywheel run {run_id!r} is running", code="run_in_progress")
        if run.status == "succeeded":
            raise APIError(409, f"flywheel run {run_id!r} succeeded: nothing to resume", code="run_finished")
        run.status, run.error = "running", None
        await anyio.to_thread.run_sync(self.store.save, run)
        await self._audit(principal, "flywheel.resume", run.id, {"from": self._next_step(run)})
        self._launch(run, principal)
        return run

    def _next_step(self, run: FlywheelRun) -> str | None:
        return next((s.name for s in run.steps if s.status != "succeeded"), None)

    def _launch(self, run: FlywheelRun, principal: Principal) -> None:
        task = asyncio.get_running_loop().create_task(self._run(run, principal), name=f"flywheel {run.id}")
        self._tasks[run.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run.id, None))

    async def _run(self, run: FlywheelRun, principal: Principal) -> None:
        for name in STEPS:
            step = run.step(name)
            if step.status == "succeeded":
                continue
            step.start()
            await anyio.to_thread.run_sync(self.store.save, run)
            try:
                await self._steps[name](run, step, principal)
            except asyncio.CancelledError:
                step.finish("failed", error="interrupted (the server stopped); resume the run")
                run.status, run.error = "failed", f"{name}: interrupted"
                await anyio.to_thread.run_sync(self.store.save, run)
                raise
            except (APIError, StepFailed, ValidationError) as exc:
                message = exc.message if isinstance(exc, APIError) else _first_error(exc)
                status = exc.status if isinstance(exc, StepFailed) else "failed"
                step.finish("failed", error=message)
                run.status, run.error = status, f"{name}: {message}"
                await anyio.to_thread.run_sync(self.store.save, run)
                await self._audit(principal, f"flywheel.{name}", run.id, {"status": status, "error": message})
                return
            except Exception as exc:  # a bug in a step: the run fails, the server goes on
                log.exception("flywheel run %s: step %s failed", run.id, name)
                step.finish("failed", error=f"{type(exc).__name__}: {exc}")
                run.status, run.error = "failed", f"{name}: internal error ({type(exc).__name__})"
                await anyio.to_thread.run_sync(self.store.save, run)
                return
            step.finish("succeeded")
            await anyio.to_thread.run_sync(self.store.save, run)
            await self._audit(principal, f"flywheel.{name}", run.id, {"status": "succeeded", **step.output})
        run.status = "succeeded"
        await anyio.to_thread.run_sync(self.store.save, run)

    async def _audit(self, principal: Principal, action: str, target: str, after: dict[str, Any]) -> None:
        await anyio.to_thread.run_sync(lambda: self.audit.append(actor_of(principal), action, target, after=after))

    # -- the steps -------------------------------------------------------------------------------

    async def _dataset(self, run: FlywheelRun, step: StepState, principal: Principal) -> None:
        spec = run.spec
        version, created, skipped = await self.datasets.from_traces(
            spec.dataset_name(),
            self._filter(spec),
            principal=principal,
            limit=spec.limit,
            description=f"flywheel run {run.id}",
            corrections=spec.corrections,
            keep_uncorrected=spec.keep_uncorrected,
        )
        source = version.source or {}
        step.output = {
            "dataset": version.name,
            "version": version.version,
            "ref": version.ref,
            "rows": version.row_count,
            "traces": source.get("traces"),
            "corrected": source.get("corrected"),
            "skipped": skipped,
            "created": created,
        }
        step.progress = f"{version.row_count} rows from {source.get('traces')} traces"

    async def _fine_tune(self, run: FlywheelRun, step: StepState, principal: Principal) -> None:
        spec, dataset = run.spec, run.output("dataset")
        if not self.tuner.available:
            raise StepFailed(self.tuner.unavailable_reason)
        job_id = step.output.get("job_id")
        if job_id is None or not await self.tuner.resumable(job_id, principal):
            job_id = await self.tuner.submit(
                dataset=dataset["dataset"],
                dataset_version=int(dataset["version"]),
                base=spec.base,
                register_as=spec.model_name(),
                hyperparameters=spec.hyperparameters,
                extra=spec.job,
                principal=principal,
            )
        step.output = {"job_id": job_id}
        await anyio.to_thread.run_sync(self.store.save, run)
        while True:
            outcome: JobOutcome = await self.tuner.poll(job_id, principal)
            if outcome.progress and outcome.progress != step.progress:
                step.progress = outcome.progress
                await anyio.to_thread.run_sync(self.store.save, run)
            if outcome.finished:
                break
            await asyncio.sleep(self.poll_interval)
        step.output = {"job_id": job_id, "status": outcome.status, **outcome.details}
        if outcome.status == "gated":
            raise StepFailed(
                f"the gate refused job {job_id}: {outcome.error or 'see the job for its evidence'}", "gated"
            )
        if outcome.status != "succeeded" or outcome.model_version is None:
            raise StepFailed(f"job {job_id} ended {outcome.status}: {outcome.error or 'see its events'}")
        step.output.update({"model": outcome.model_name or spec.model_name(), "model_version": outcome.model_version})

    async def _release(self, run: FlywheelRun, step: StepState, principal: Principal) -> None:
        spec, tuned = run.spec, run.output("fine_tune")
        name, version = str(tuned.get("model") or spec.model_name()), int(tuned["model_version"])
        if spec.release is not None and self.releases is not None:
            release = self._release_spec(spec, run.id, version)
            if step.output.get("release") != release.name:  # a resumed step does not create it twice
                await self.releases.create(release, principal)
                step.output = {"kind": "canary", "release": release.name, "model": name, "version": version}
                await anyio.to_thread.run_sync(self.store.save, run)
            started = await self.releases.act(release.name, "start", principal=principal)
            step.output.update({"state": started.get("state"), "route": spec.route})
            step.progress = f"release {release.name}: {started.get('state')} on route {spec.route}"
            return
        moved = await self.models.move(
            name, spec.alias, version, reason=f"flywheel run {run.id} (job {tuned.get('job_id')})", principal=principal
        )
        step.output = {
            "kind": "alias",
            "model": name,
            "alias": spec.alias,
            "version": version,
            "target": f"registry:{name}@{spec.alias}",
            "changed": moved.get("changed", True),
        }
        step.progress = f"{name}@{spec.alias} → version {version}"


def _first_error(exc: StepFailed | ValidationError) -> str:
    """A step's failure as one line (a request a step built that did not validate: its first error)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
