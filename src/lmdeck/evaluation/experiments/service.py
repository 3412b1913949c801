"""Serving class of ``/api/experiments``: create, watch, stop and promote experiments.

Running experiments are held in memory for the ``experiment`` step and reloaded when
this process changes one, and every ``poll_interval`` seconds for changes made by
another process. Promoting a variant moves the registry label (prompt experiments) or
alias (model variants) the experiment names, through the registry (so the move is in
its history and the audit log), records ``experiment.promoted`` in the audit log, and
stops the experiment.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import anyio
from sqlalchemy.exc import IntegrityError

from lmdeck.evaluation.experiments.analysis import analyse
from lmdeck.evaluation.experiments.schemas import ExperimentSpec
from lmdeck.evaluation.experiments.store import ExperimentRecord, ExperimentStore
from lmdeck.policy.principal import Principal
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot

log = logging.getLogger(__name__)


class Audit(Protocol):
    def append(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None) -> Any: ...


class LabelMover(Protocol):
    async def move(
        self, name: str, label: str, version: int | None, *, reason: str | None, principal: Principal
    ) -> dict[str, Any]: ...


class ExperimentService:
    def __init__(
        self,
        store: ExperimentStore,
        snapshot: Any,
        *,
        prompts: LabelMover | None = None,
        models: LabelMover | None = None,
        audit: Audit | None = None,
        poll_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.snapshot = snapshot  # () -> RegistrySnapshot | None
        self.prompts = prompts
        self.models = models
        self.audit = audit
        self.poll_interval = poll_interval
        self._running: list[ExperimentSpec] = []
        self._poller = Poller(
            self.refresh,
            interval=poll_interval,
            name="experiments-poll",
            log=log,
            failure=f"reloading experiments failed; retrying in {poll_interval:.1f}s",
        )

    def running(self) -> list[ExperimentSpec]:
        return self._running

    def load(self) -> None:
        """Read the running experiments (blocking)."""
        self._running = [r.spec for r in self.store.all("running")]

    async def refresh(self) -> None:
        await anyio.to_thread.run_sync(self.load)

    def _check(self, spec: ExperimentSpec) -> None:
        snap: RegistrySnapshot | None = self.snapshot() if self.snapshot else None
        if snap is None:
            return
        for variant in spec.variants:
            if variant.prompt_version is not None and spec.prompt is not None:
                snap.prompt(spec.prompt, version=variant.prompt_version)
            if variant.model is not None:
                snap.model(ModelRef.parse(variant.model))

    async def create(self, spec: ExperimentSpec, principal: Principal) -> dict[str, Any]:
        self._check(spec)
        if any(s.route == spec.route and s.prompt == spec.prompt for s in self._running):
            raise APIError(
                409,
                f"an experiment on {'route ' + repr(spec.route) if spec.route else 'prompt ' + repr(spec.prompt)} "
                "is already running: stop it first",
                code="experiment_conflict",
            )

        def write() -> ExperimentRecord:
            try:
                record = self.store.create(spec, principal.actor)
            except IntegrityError:
                raise APIError(
                    409, f"experiment {spec.name!r} exists: choose another name", code="experiment_exists"
                ) from None
            if self.audit is not None:
                self.audit.append(
                    principal.actor, "experiment.created", f"experiment:{spec.name}", after=spec.model_dump(mode="json")
                )
            return record

        record = await anyio.to_thread.run_sync(write)
        await self.refresh()
        return record.to_dict()

    async def _record(self, name: str) -> ExperimentRecord:
        record = await anyio.to_thread.run_sync(self.store.get, name)
        if record is None:
            raise APIError(404, f"no experiment {name!r}; list them with `lmdeck eval experiments`", code="not_found")
        return record

    async def entries(self) -> list[dict[str, Any]]:
        records = await anyio.to_thread.run_sync(self.store.all)
        return [r.to_dict() for r in records]

    async def show(self, name: str) -> dict[str, Any]:
        record = await self._record(name)
        totals = await anyio.to_thread.run_sync(self.store.totals, name)
        variants, verdict = analyse(record.spec, totals)
        return {**record.to_dict(), "variants": [v.to_dict() for v in variants], "verdict": verdict.to_dict()}

    async def stop(self, name: str, principal: Principal, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
        record = await self._record(name)
        if record.status != "running":
            raise APIError(409, f"experiment {name!r} is already stopped", code="experiment_stopped")

        def write() -> None:
            self.store.stop(name, outcome)
            if self.audit is not None:
                self.audit.append(principal.actor, "experiment.stopped", f"experiment:{name}", after=outcome)

        await anyio.to_thread.run_sync(write)
        await self.refresh()
        return await self.show(name)

    async def promote(
        self, name: str, variant_name: str | None, principal: Principal, reason: str | None = None
    ) -> dict[str, Any]:
        """Move the experiment's label/alias to a variant (the verdict's winner by default) and stop it."""
        shown = await self.show(name)
        record = await self._record(name)
        spec = record.spec
        if record.status != "running":
            raise APIError(409, f"experiment {name!r} is already stopped", code="experiment_stopped")
        verdict = shown["verdict"]
        chosen = variant_name or verdict.get("winner")
        if chosen is None:
            raise APIError(
                409,
                f"experiment {name!r} has no winner yet ({verdict['status']}): name the variant to promote",
                code="no_winner",
            )
        variant = spec.variant(chosen)
        if variant is None:
            raise APIError(404, f"experiment {name!r} has no variant {chosen!r}", code="not_found")
        if variant.route is not None:
            raise APIError(
                409,
                f"variant {chosen!r} changes the route: promote it by changing the route's configuration",
                code="not_promotable",
            )
        why = reason or f"experiment {name}: {chosen} promoted ({verdict['status']})"
        moves = []
        if variant.prompt_version is not None and spec.prompt is not None:
            if self.prompts is None:
                raise APIError(503, "the prompt registry is not available", code="registry_unavailable")
            moves.append(
                await self.prompts.move(
                    spec.prompt, spec.label, variant.prompt_version, reason=why, principal=principal
                )
            )
        if variant.model is not None:
            if self.models is None:
                raise APIError(503, "the model registry is not available", code="registry_unavailable")
            snap = self.snapshot() if self.snapshot else None
            ref = ModelRef.parse(variant.model)
            number = snap.model(ref).version if snap is not None else ref.version
            moves.append(await self.models.move(ref.name, spec.label, number, reason=why, principal=principal))
        outcome = {"promoted": chosen, "verdict": verdict, "moves": moves, "reason": why}
        if self.audit is not None:
            await anyio.to_thread.run_sync(
                lambda: self.audit.append(  # type: ignore[union-attr]
                    principal.actor, "experiment.promoted", f"experiment:{name}", after=outcome
                )
            )
        return await self.stop(name, principal, outcome)

    async def start(self) -> None:
        await self.refresh()
        self._poller.start()

    async def stop_polling(self) -> None:
        await self._poller.stop()
