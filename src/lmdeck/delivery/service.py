"""Serving class of ``/api/releases``: create, start, promote, roll back and abort releases.

Every transition goes through :func:`lmdeck.delivery.machine.transition`, is saved with its
history row (a revision check keeps two actors from both acting on one read), appended to the
audit log as ``release.<action>`` with its evidence, and published on the
:class:`~lmdeck.delivery.events.DeliveryEvents` bus. Promotion to the last step's end moves the
registry pointers the candidate names (the prompt's ``label``, the model's alias), through the
registry, so the move is in its history (the deployment record) and the audit log; a rollback of
a promoted release moves them back to the baseline captured at the start, each move conditional
on the pointer still being where the promotion put it.

Releases serving traffic are held in memory for the ``release`` step (:meth:`serving`), reloaded
when this process changes one and every ``poll_interval`` seconds for changes made by another.

Permissions follow experiments: a release moves a route's traffic, so creating or acting on one
needs the permission to move that route's traffic (and, with a prompt candidate, to change the
prompt); the route's team and the release's own team see it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio
from sqlalchemy.exc import IntegrityError

from lmdeck.changes import ChangeNotices
from lmdeck.delivery.events import DeliveryEvents
from lmdeck.delivery.machine import Action, transition
from lmdeck.delivery.store import ReleaseRecord, ReleaseStore, StaleRelease
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    RouteOwner,
    check_change,
    check_move_traffic,
    may_move_traffic,
    may_read,
    may_watch_traffic,
    owner_for_new,
)
from lmdeck.polling import Poller
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ACTIVE, Analysis, Baseline, ReleaseEvent, ReleaseSpec
from lmdeck.registry.owners import resolve_team
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot, missing_prompt

log = logging.getLogger(__name__)

#: Who acts when the analysis decides (audit ``actor``, registry moves).
CONTROLLER = Principal(key_id="release-controller", role="admin", name="release controller")
CONTROLLER_ACTOR = "system:release-controller"


class Audit(Protocol):
    def append(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None) -> Any: ...


class PointerMover(Protocol):
    """The registry's prompts or models (:class:`lmdeck.registry.catalog.Catalog`)."""

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

    def check_movable(self, name: str, label: str, principal: Principal) -> None: ...


class RouteOwnership(Protocol):
    def owner(self, route: str) -> RouteOwner | None: ...


class ReleaseService:
    """Releases of one gateway (see the module docs)."""

    def __init__(
        self,
        store: ReleaseStore,
        snapshot: Callable[[], RegistrySnapshot] | None = None,
        *,
        prompts: PointerMover | None = None,
        models: PointerMover | None = None,
        audit: Audit | None = None,
        events: DeliveryEvents | None = None,
        routes: Callable[[], RouteOwnership | None] | None = None,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.prompts = prompts
        self.models = models
        self.audit = audit
        self.events = events or DeliveryEvents()
        self.routes = routes or (lambda: None)
        self.clock = clock
        self._serving: list[ReleaseRecord] = []
        self._changes = ChangeNotices()
        self._poller = Poller(
            self._reload,
            interval=poll_interval,
            name="releases-poll",
            log=log,
            failure=f"reloading releases failed; retrying in {poll_interval:.1f}s",
        )

    # -- what the release step reads ---------------------------------------------------------------

    def serving(self) -> list[ReleaseRecord]:
        """Releases whose candidate serves live traffic now: in the canary, or promoted with a route or
        parameters (which no registry pointer carries, so the release keeps applying them)."""
        return self._serving

    def load(self) -> None:
        """Read the releases serving traffic (blocking)."""
        self._serving = [
            r
            for r in self.store.all(("canary", "promoted"))
            if r.state == "canary" or r.spec.candidate.route is not None or r.spec.candidate.params
        ]

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce this process's release transitions through ``changes``; reload at once on other processes'."""
        self._changes = changes
        changes.subscribe("delivery", self._poller.nudge)

    async def refresh(self) -> None:
        """Reload after a committed release change, and tell other processes to reload."""
        await self._reload()
        self._changes.publish("delivery")

    async def _reload(self) -> None:
        await anyio.to_thread.run_sync(self.load)

    async def start(self) -> None:
        await self._reload()
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()

    # -- permissions (blocking) --------------------------------------------------------------------

    def _route_owner(self, route: str) -> RouteOwner | None:
        routes = self.routes()
        if routes is None:
            return None
        found = routes.owner(route)
        if found is None:
            raise APIError(404, f"no route {route!r}: list them with `lmdeck config routes`", code="route_not_found")
        return found

    def _authorize(self, spec: ReleaseSpec, principal: Principal) -> None:
        route = self._route_owner(spec.route)
        if route is not None:
            check_move_traffic(principal, [route], f"release {spec.name!r}")
        snap = self.snapshot() if self.snapshot else None
        if spec.prompt is not None and snap is not None:
            prompt = spec.prompt
            check_change(principal, snap.owner("prompt", prompt), f"prompt {prompt!r}", lambda: missing_prompt(prompt))
        # The controller promotes as lmdeck itself: the creator must be one who could move these pointers.
        candidate = spec.candidate
        if candidate.prompt_version is not None and spec.prompt is not None and self.prompts is not None:
            self.prompts.check_movable(spec.prompt, spec.label, principal)
        if candidate.model is not None and self.models is not None:
            self.models.check_movable(ModelRef.parse(candidate.model).name, spec.label, principal)

    def visible(self, record: ReleaseRecord, principal: Principal) -> bool:
        if may_read(principal, record.owner):
            return True
        routes = self.routes()
        owner = routes.owner(record.spec.route) if routes is not None else None
        return owner is not None and may_watch_traffic(principal, owner)

    def _may_act(self, record: ReleaseRecord, principal: Principal) -> bool:
        routes = self.routes()
        owner = routes.owner(record.spec.route) if routes is not None else None
        return principal.role == "admin" or (owner is not None and may_move_traffic(principal, owner))

    def _check(self, spec: ReleaseSpec) -> None:
        """The candidate's prompt version and model resolve (404 naming the fix when not)."""
        snap = self.snapshot() if self.snapshot else None
        if snap is None:
            return
        candidate = spec.candidate
        if candidate.prompt_version is not None and spec.prompt is not None:
            snap.prompt(spec.prompt, version=candidate.prompt_version)
        if candidate.model is not None:
            snap.model(ModelRef.parse(candidate.model))
        if candidate.route is not None:
            self._route_owner(candidate.route)

    def _baseline(self, spec: ReleaseSpec) -> Baseline:
        """What the pointers the candidate replaces point at now."""
        snap = self.snapshot() if self.snapshot else None
        baseline = Baseline(prompt=spec.prompt, label=spec.label)
        if snap is None:
            return baseline
        if spec.prompt is not None:
            baseline.prompt_version = snap.prompt_labels.get((spec.prompt, spec.label))
        if spec.candidate.model is not None:
            name = ModelRef.parse(spec.candidate.model).name
            baseline.model = name
            baseline.model_version = snap.model_aliases.get((name, spec.label))
        return baseline

    # -- reads -------------------------------------------------------------------------------------

    async def _record(self, name: str, principal: Principal | None) -> ReleaseRecord:
        def read() -> ReleaseRecord | None:
            found = self.store.get(name)
            if found is None or (principal is not None and not self.visible(found, principal)):
                return None
            return found

        record = await anyio.to_thread.run_sync(read)
        if record is None:
            raise APIError(404, f"no release {name!r}: list them with `lmdeck releases list`", code="not_found")
        return record

    async def may_act(self, name: str, principal: Principal) -> bool:
        """Whether ``principal`` may start, promote, roll back or abort release ``name`` (what :meth:`act`
        checks); 404 as :meth:`show` when the release is unknown or not visible to it."""
        record = await self._record(name, principal)
        return await anyio.to_thread.run_sync(self._may_act, record, principal)

    async def show(self, name: str, principal: Principal | None = None) -> dict[str, Any]:
        """The release's status and its history (every transition and analysis, oldest first)."""
        record = await self._record(name, principal)
        history = await anyio.to_thread.run_sync(self.store.history, name)
        return {
            **record.status().model_dump(mode="json"),
            "history": [e.model_dump(mode="json") for e in history],
        }

    async def entries(self, principal: Principal | None = None, state: str | None = None) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            return [
                r.status().model_dump(mode="json")
                for r in self.store.all((state,) if state else None)
                if principal is None or self.visible(r, principal)
            ]

        return await anyio.to_thread.run_sync(read)

    # -- writes ------------------------------------------------------------------------------------

    async def create(self, spec: ReleaseSpec, principal: Principal) -> dict[str, Any]:
        """Record a pending release (201); 409 when the name is taken, 404/403 as the checks find."""

        def write() -> ReleaseRecord:
            self._authorize(spec, principal)
            self._check(spec)
            with self.store.db.engine.connect() as conn:
                owner = owner_for_new(principal, resolve_team(conn, spec.team), spec.visibility)
            record = ReleaseRecord(spec=spec, state="pending", created_at=self.clock(), created_by=principal.actor)
            record.owner = owner
            try:
                self.store.create(record)
            except IntegrityError:
                raise APIError(
                    409, f"release {spec.name!r} exists: choose another name", code="release_exists"
                ) from None
            if self.audit is not None:
                self.audit.append(
                    principal.actor, "release.created", f"release:{spec.name}", after=spec.model_dump(mode="json")
                )
            return record

        record = await anyio.to_thread.run_sync(write)
        return record.status().model_dump(mode="json")

    async def act(
        self,
        name: str,
        action: Action,
        *,
        principal: Principal | None = None,
        reason: str | None = None,
        evidence: dict[str, Any] | None = None,
        analysis: Analysis | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Apply ``action`` to release ``name``: by ``principal`` (checked), or by the controller (None).

        Raises 404 (unknown or not visible), 403 (may not move the route's traffic), 409 (the state does
        not allow it, another release on the route is live, or the release changed meanwhile).
        """
        record = await self._record(name, principal)
        if principal is not None and not await anyio.to_thread.run_sync(self._may_act, record, principal):
            raise APIError(
                403,
                f"release {name!r} moves the traffic of route {record.spec.route!r}: the developers of the team "
                "owning it, or an admin, may act on it",
                code="not_owner",
            )
        actor = principal.actor if principal is not None else CONTROLLER_ACTOR
        mover = principal or CONTROLLER
        when = self.clock() if now is None else now
        if action == "start":
            await anyio.to_thread.run_sync(self._check_start, record)
        before = record.state
        if analysis is not None:
            record.last_analysis = analysis
        event = transition(record, action, now=when, actor=actor, reason=reason, evidence=evidence)
        if event.to_state == "promoted":
            event.evidence = {**(event.evidence or {}), "deployment": await self._promote_pointers(record, mover)}
        elif event.to_state == "rolled_back" and before == "promoted":
            event.evidence = {**(event.evidence or {}), "restored": await self._restore_pointers(record, mover)}
        try:
            await anyio.to_thread.run_sync(self._save, record, event, before)
        except StaleRelease:
            raise APIError(
                409, f"release {name!r} changed while acting on it: read it again and retry", code="release_changed"
            ) from None
        await self.refresh()
        self.events.publish(event)
        return {**record.status().model_dump(mode="json"), "event": event.model_dump(mode="json")}

    def _check_start(self, record: ReleaseRecord) -> None:
        live = [r for r in self.store.all(tuple(ACTIVE)) if r.spec.route == record.spec.route and r.name != record.name]
        if live:
            raise APIError(
                409,
                f"release {live[0].name!r} is live on route {record.spec.route!r}: finish or abort it first",
                code="release_conflict",
            )
        record.baseline = self._baseline(record.spec)

    def _save(self, record: ReleaseRecord, event: ReleaseEvent, before: str) -> None:
        self.store.save(record, event)
        if self.audit is not None:
            self.audit.append(
                event.actor,
                f"release.{event.action}",
                f"release:{record.name}",
                before={"state": before},
                after=event.model_dump(mode="json"),
            )

    # -- registry pointers -------------------------------------------------------------------------

    async def _promote_pointers(self, record: ReleaseRecord, principal: Principal) -> list[dict[str, Any]]:
        spec, candidate = record.spec, record.spec.candidate
        why = f"release {spec.name}: promoted"
        moves: list[dict[str, Any]] = []
        if candidate.prompt_version is not None and spec.prompt is not None:
            if self.prompts is None:
                raise APIError(503, "the prompt registry is not available", code="registry_unavailable")
            moves.append(
                await self.prompts.move(
                    spec.prompt, spec.label, candidate.prompt_version, reason=why, principal=principal
                )
            )
        if candidate.model is not None:
            if self.models is None:
                raise APIError(503, "the model registry is not available", code="registry_unavailable")
            ref = ModelRef.parse(candidate.model)
            snap = self.snapshot() if self.snapshot else None
            number = snap.model(ref).version if snap is not None else ref.version
            moves.append(await self.models.move(ref.name, spec.label, number, reason=why, principal=principal))
        return moves

    async def _restore_pointers(self, record: ReleaseRecord, principal: Principal) -> list[dict[str, Any]]:
        """Move the pointers a promotion moved back to the baseline (only if still where it put them)."""
        spec, candidate, baseline = record.spec, record.spec.candidate, record.baseline or Baseline()
        why = f"release {spec.name}: rolled back"
        moves: list[dict[str, Any]] = []
        if candidate.prompt_version is not None and spec.prompt is not None and self.prompts is not None:
            moves.append(
                await self.prompts.move(
                    spec.prompt,
                    spec.label,
                    baseline.prompt_version,
                    reason=why,
                    principal=principal,
                    expected_version=candidate.prompt_version,
                )
            )
        if candidate.model is not None and self.models is not None and baseline.model is not None:
            snap = self.snapshot() if self.snapshot else None
            ref = ModelRef.parse(candidate.model)
            number = snap.model(ref).version if snap is not None else ref.version
            moves.append(
                await self.models.move(
                    baseline.model,
                    spec.label,
                    baseline.model_version,
                    reason=why,
                    principal=principal,
                    expected_version=number,
                )
            )
        return moves

    async def rollback(self, release: str, reason: str, actor: str = CONTROLLER_ACTOR) -> dict[str, Any]:
        """Roll ``release`` back (an alert action's entry point): the candidate stops serving at once and
        a promoted release's pointers move back to the baseline. 404/409 as :meth:`act`."""
        tagged = f"{reason} (by {actor})" if actor != CONTROLLER_ACTOR else reason
        return await self.act(release, "rollback", reason=tagged, evidence={"requested_by": actor})
