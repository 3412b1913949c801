"""Serving class of ``/api/experiments``: create, watch, stop and promote experiments.

Running experiments are held in memory for the ``experiment`` step and reloaded when
this process changes one, and every ``poll_interval`` seconds for changes made by
another process. Promoting a variant moves the registry label (prompt experiments) or
alias (model variants) the experiment names, through the registry (so the move is in
its history and the audit log), records ``experiment.promoted`` in the audit log, and
stops the experiment.

An experiment moves live traffic, so starting one on a route needs the permission to
move that route's traffic, and on a prompt the permission to change the prompt; its
variants may serve only models (and send only to routes) the route's owner may use
(:mod:`lmdeck.policy.ownership`). It belongs to its creator's team; the route's team
sees it too and may stop it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import anyio
from sqlalchemy.exc import IntegrityError

from lmdeck.changes import ChangeNotices
from lmdeck.evaluation.experiments.analysis import analyse
from lmdeck.evaluation.experiments.store import ExperimentRecord, ExperimentStore
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    Owner,
    RouteOwner,
    check_change,
    check_move_traffic,
    check_prompt_variant,
    check_read,
    check_variant_model,
    check_variant_route,
    may_change,
    may_move_traffic,
    may_read,
    may_watch_traffic,
    owner_after_update,
    owner_for_new,
)
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.evaluation import ExperimentSpec
from lmdeck.registry.owners import resolve_team
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot, missing_prompt

log = logging.getLogger(__name__)


class Audit(Protocol):
    def append(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None) -> Any: ...


class LabelMover(Protocol):
    async def move(
        self, name: str, label: str, version: int | None, *, reason: str | None, principal: Principal
    ) -> dict[str, Any]: ...


class RouteOwnership(Protocol):
    """Who owns a live route (:class:`lmdeck.registry.route_owners.RouteOwners`; blocking)."""

    def owner(self, route: str) -> RouteOwner | None: ...


class ExperimentService:
    def __init__(
        self,
        store: ExperimentStore,
        snapshot: Callable[[], RegistrySnapshot] | None,
        *,
        prompts: LabelMover | None = None,
        models: LabelMover | None = None,
        audit: Audit | None = None,
        poll_interval: float = 2.0,
        routes: Callable[[], RouteOwnership | None] | None = None,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.routes = routes or (lambda: None)
        self.prompts = prompts
        self.models = models
        self.audit = audit
        self.poll_interval = poll_interval
        self._running: list[ExperimentSpec] = []
        self._changes = ChangeNotices()
        self._poller = Poller(
            self._reload,
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

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce this process's experiment changes through ``changes``; reload at once on other processes'."""
        self._changes = changes
        changes.subscribe("experiments", self._poller.nudge)

    async def refresh(self) -> None:
        """Reload after a committed experiment change, and tell other processes to reload."""
        await self._reload()
        self._changes.publish("experiments")

    async def _reload(self) -> None:
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

    # -- permissions (blocking) ----------------------------------------------------------------

    def _route_owner(self, route: str) -> RouteOwner | None:
        routes = self.routes()
        if routes is None:
            return None
        found = routes.owner(route)
        if found is None:
            raise APIError(404, f"no route {route!r}: list them with `lmdeck config routes`", code="route_not_found")
        return found

    def _authorize(self, spec: ExperimentSpec, principal: Principal) -> None:
        """Refuse an experiment that would move traffic ``principal`` may not move."""
        snap: RegistrySnapshot | None = self.snapshot() if self.snapshot else None
        if spec.prompt is not None:
            owner = snap.owner("prompt", spec.prompt) if snap is not None else Owner(principal.team_id)
            check_change(principal, owner, f"prompt {spec.prompt!r}", lambda: missing_prompt(str(spec.prompt)))
            for variant in spec.variants:
                check_prompt_variant(principal, variant.name, variant.model is not None or variant.route is not None)
            return
        assert spec.route is not None
        route = self._route_owner(spec.route)
        if route is None:
            return
        check_move_traffic(principal, [route], f"an experiment on route {spec.route!r}")
        for variant in spec.variants:
            if variant.model is not None and snap is not None:
                ref = variant.model
                name = ModelRef.parse(ref).name
                model_owner = snap.owner("model", name)
                check_read(principal, model_owner, functools.partial(_missing_model, ref))
                check_variant_model(route, variant.name, name, model_owner)
            if variant.route is not None:
                target = self._route_owner(variant.route)
                if target is not None:
                    check_variant_route(route, variant.name, target)

    def _traffic_owner(self, record: ExperimentRecord) -> tuple[RouteOwner | None, Owner | None]:
        """(the route's owner, the prompt's owner) of the traffic ``record`` covers."""
        if record.spec.route is not None:
            routes = self.routes()
            return (routes.owner(record.spec.route) if routes is not None else None), None
        snap: RegistrySnapshot | None = self.snapshot() if self.snapshot else None
        return None, (snap.owner("prompt", str(record.spec.prompt)) if snap is not None else None)

    def visible(self, record: ExperimentRecord, principal: Principal) -> bool:
        """Its team, shared, admins, and the team whose route it covers see an experiment."""
        if may_read(principal, record.owner):
            return True
        route, _ = self._traffic_owner(record)
        return route is not None and may_watch_traffic(principal, route)

    def may_stop(self, record: ExperimentRecord, principal: Principal) -> bool:
        """Its team and those who may move the traffic it covers may stop (or promote) an experiment."""
        if may_change(principal, record.owner):
            return True
        route, prompt = self._traffic_owner(record)
        if route is not None:
            return may_move_traffic(principal, route)
        return prompt is not None and may_change(principal, prompt)

    # -- serving -------------------------------------------------------------------------------

    async def create(
        self,
        spec: ExperimentSpec,
        principal: Principal,
        *,
        team: str | None = None,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        def write() -> ExperimentRecord:
            self._authorize(spec, principal)
            self._check(spec)
            if any(s.route == spec.route and s.prompt == spec.prompt for s in self._running):
                covered = "route " + repr(spec.route) if spec.route else "prompt " + repr(spec.prompt)
                raise APIError(
                    409, f"an experiment on {covered} is already running: stop it first", code="experiment_conflict"
                )
            with self.store.db.engine.connect() as conn:
                owner = owner_for_new(principal, resolve_team(conn, team), visibility)
            try:
                record = self.store.create(spec, principal.actor, owner)
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

    async def _record(self, name: str, principal: Principal) -> ExperimentRecord:
        def read() -> ExperimentRecord | None:
            found = self.store.get(name)
            return found if found is not None and self.visible(found, principal) else None

        record = await anyio.to_thread.run_sync(read)
        if record is None:
            raise APIError(404, f"no experiment {name!r}; list them with `lmdeck eval experiments`", code="not_found")
        return record

    async def _stoppable(self, name: str, principal: Principal) -> ExperimentRecord:
        record = await self._record(name, principal)
        if not await anyio.to_thread.run_sync(self.may_stop, record, principal):
            raise APIError(
                403,
                f"experiment {name!r} belongs to {record.owner.team_name}: its developers, the developers of the "
                "team owning the traffic it covers, or an admin may stop or promote it",
                code="not_owner",
            )
        return record

    async def entries(self, principal: Principal) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            return [r.to_dict() for r in self.store.all() if self.visible(r, principal)]

        return await anyio.to_thread.run_sync(read)

    async def show(self, name: str, principal: Principal) -> dict[str, Any]:
        record = await self._record(name, principal)
        spec = record.spec
        horizon = spec.sample_size if spec.design == "fixed_horizon" else None
        totals = await anyio.to_thread.run_sync(self.store.totals, name, horizon)
        variants, verdict = analyse(record.spec, totals)
        return {**record.to_dict(), "variants": [v.to_dict() for v in variants], "verdict": verdict.to_dict()}

    async def update_owner(
        self,
        name: str,
        principal: Principal,
        *,
        team: str | None = None,
        team_given: bool = False,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Share, unshare or (admins) give an experiment to another team."""
        record = await self._record(name, principal)

        def write() -> None:
            with self.store.db.engine.connect() as conn:
                resolved = resolve_team(conn, team) if team_given else None
            changed = owner_after_update(
                principal,
                record.owner,
                f"experiment {name!r}",
                team=resolved,
                team_given=team_given,
                visibility=visibility,
            )
            self.store.set_owner(name, changed)

        await anyio.to_thread.run_sync(write)
        return await self.show(name, principal)

    async def stop(self, name: str, principal: Principal, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
        record = await self._stoppable(name, principal)
        if record.status != "running":
            raise APIError(409, f"experiment {name!r} is already stopped", code="experiment_stopped")

        def write() -> None:
            self.store.stop(name, outcome)
            if self.audit is not None:
                self.audit.append(principal.actor, "experiment.stopped", f"experiment:{name}", after=outcome)

        await anyio.to_thread.run_sync(write)
        await self.refresh()
        return await self.show(name, principal)

    async def promote(
        self, name: str, variant_name: str | None, principal: Principal, reason: str | None = None
    ) -> dict[str, Any]:
        """Move the experiment's label/alias to a variant (the verdict's winner by default) and stop it."""
        record = await self._stoppable(name, principal)
        shown = await self.show(name, principal)
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
        await self._reload()
        self._poller.start()

    async def stop_polling(self) -> None:
        await self._poller.stop()


def _missing_model(ref: str) -> APIError:
    return APIError(
        404, f"registry model {ref} does not resolve: list them with `lmdeck models list`", code="model_not_found"
    )
