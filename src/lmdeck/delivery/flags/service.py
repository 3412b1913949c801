"""Changing flags: permissions, history, audit, and the live snapshot refreshed after each change.

A flag that names ``routes`` may be changed by an admin or by the developers of the team that
owns every one of those routes (:func:`lmdeck.policy.ownership.check_move_traffic`); a flag
that names none, by admins only. Every change is a new version in the flag's history and an
``audit_log`` entry (``flag.created``, ``flag.updated``, ``flag.enabled``, ``flag.disabled``,
``flag.deleted``), and is live on the next request of this process (others poll)::

    service = FlagService(store, live, audit, routes=lambda: registry.route_owners)
    await service.put(spec, principal)                  # FlagRecord; 403 / 404 / 409 as APIError
    await service.disable_flag("support-v2", "alert:error-rate")    # for alert actions
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import anyio

from lmdeck.delivery.flags.evaluation import FlagSubject, evaluate
from lmdeck.delivery.flags.live import LiveFlags
from lmdeck.delivery.flags.store import FlagStore, VersionConflict
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.ownership import RouteOwner, check_move_traffic, is_admin
from lmdeck.protocol import APIError
from lmdeck.protocol.flags import (
    EvaluateRequest,
    FlagEvaluation,
    FlagHistoryEntry,
    FlagRecord,
    FlagSpec,
    HistoryAction,
)


class RouteOwnership(Protocol):
    """Who owns a live route (:class:`lmdeck.registry.route_owners.RouteOwners`; blocking)."""

    def owner(self, route: str) -> RouteOwner | None: ...


def missing_flag(name: str) -> APIError:
    return APIError(404, f"no flag {name!r}: list them with `lmdeck flags list`", code="flag_not_found")


def conflict(name: str, exc: VersionConflict, expected: int | None) -> APIError:
    now = f"is at version {exc.current}" if exc.current else "does not exist"
    return APIError(
        409,
        f"flag {name!r} {now}, not version {expected}: read it again and retry with its current version",
        code="version_conflict",
    )


class FlagService:
    """The flags API's logic; every method that writes runs its database work in a thread."""

    def __init__(
        self,
        store: FlagStore,
        live: LiveFlags,
        audit: AuditLog | None = None,
        routes: Callable[[], RouteOwnership | None] | None = None,
    ) -> None:
        self.store = store
        self.live = live
        self.audit = audit
        self.routes = routes or (lambda: None)

    # -- permissions (blocking) ------------------------------------------------------------------

    def _authorize(self, principal: Principal, name: str, before: FlagSpec | None, after: FlagSpec | None) -> None:
        if is_admin(principal):
            return
        routes = sorted({*(before.routes if before else []), *(after.routes if after else [])})
        if not routes:
            raise APIError(
                403,
                f"flag {name!r} belongs to no route, so only admins may change it: "
                "ask an admin, or give it the `routes` it belongs to",
                code="not_route_owner",
            )
        ownership = self.routes()
        owners: list[RouteOwner] = []
        for route in routes:
            owner = ownership.owner(route) if ownership is not None else None
            if owner is None:
                if after is not None and route in after.routes:
                    raise APIError(
                        404,
                        f"flag {name!r} names the route {route!r}, which does not exist: "
                        "list routes with `lmdeck config routes`",
                        param="routes",
                        code="route_not_found",
                    )
                owner = RouteOwner(route, admins_only=True, basis="the route no longer exists")
            owners.append(owner)
        check_move_traffic(principal, owners, f"changing flag {name!r}")

    def _audit(self, actor: str, action: str, name: str, before: FlagRecord | None, after: FlagRecord | None) -> None:
        if self.audit is None:
            return
        self.audit.append(
            actor,
            f"flag.{action}",
            f"flag:{name}",
            before=before.spec.model_dump(mode="json") if before else None,
            after=after.spec.model_dump(mode="json") if after else None,
        )

    # -- reads ----------------------------------------------------------------------------------

    def may_switch(self, principal: Principal, spec: FlagSpec) -> bool:
        """Whether ``principal`` may turn the flag ``spec`` on or off, as :meth:`set_enabled` would judge it
        (blocking): an admin, or a developer whose team may move traffic on every route the flag names."""
        if not principal.at_least("developer"):
            return False
        try:
            self._authorize(principal, spec.name, spec, spec)
        except APIError:
            return False
        return True

    def may_read(self, principal: Principal | None, spec: FlagSpec) -> bool:
        """Whether the caller may read a flag (blocking): an admin, a flag naming no route (global
        configuration), or one naming a route the caller's team owns."""
        if principal is None or is_admin(principal) or not spec.routes:
            return True
        ownership = self.routes()
        for route in spec.routes:
            owner = ownership.owner(route) if ownership is not None else None
            if owner is not None and not owner.admins_only and owner.team_id == principal.team_id:
                return True
        return False

    async def records(self, principal: Principal | None = None) -> list[FlagRecord]:
        """Every flag the caller may read (:meth:`may_read`)."""
        return await anyio.to_thread.run_sync(lambda: [r for r in self.store.all() if self.may_read(principal, r.spec)])

    async def get(self, name: str, principal: Principal | None = None) -> FlagRecord:
        """One flag; 404 when it does not exist or the caller may not read it."""
        found = await anyio.to_thread.run_sync(self.store.get, name)
        if found is None or not await anyio.to_thread.run_sync(self.may_read, principal, found.spec):
            raise missing_flag(name)
        return found

    async def history(self, name: str, limit: int = 100, principal: Principal | None = None) -> list[FlagHistoryEntry]:
        """A flag's changes, newest first; 404 as :meth:`get` (a deleted flag: admins only)."""
        if principal is not None and not is_admin(principal):
            await self.get(name, principal)
        entries = await anyio.to_thread.run_sync(self.store.history, name, limit)
        if not entries:
            raise missing_flag(name)
        return entries

    def evaluate(self, request: EvaluateRequest) -> list[FlagEvaluation]:
        """The flags' values for a described request, from the live snapshot (what the gateway would serve)."""
        snapshot = self.live.snapshot
        names = request.flags if request.flags is not None else sorted(snapshot.flags)
        unknown = [n for n in names if n not in snapshot.flags]
        if unknown:
            raise APIError(404, f"no flag {unknown[0]!r}: list them with `lmdeck flags list`", param="flags")
        subject = FlagSubject.from_context(request.context)
        return [evaluate(snapshot.flags[n], subject) for n in names]

    # -- writes ---------------------------------------------------------------------------------

    async def put(self, spec: FlagSpec, principal: Principal, *, expected_version: int | None = None) -> FlagRecord:
        """Create or replace a flag (as ``principal``); ``expected_version`` 0 means "create only"."""

        def write() -> FlagRecord:
            current = self.store.get(spec.name)
            self._authorize(principal, spec.name, current.spec if current else None, spec)
            try:
                before, after = self.store.put(spec, principal.actor, expected_version=expected_version)
            except VersionConflict as exc:
                raise conflict(spec.name, exc, expected_version) from None
            self._audit(principal.actor, "created" if before is None else "updated", spec.name, before, after)
            return after

        record = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return record

    async def set_enabled(self, name: str, enabled: bool, principal: Principal | None, actor: str = "") -> FlagRecord:
        """Turn a flag on or off (``principal`` None: lmdeck itself acts, as ``actor``)."""
        who = principal.actor if principal is not None else actor

        def write() -> FlagRecord:
            current = self.store.get(name)
            if current is None:
                raise missing_flag(name)
            if principal is not None:
                self._authorize(principal, name, current.spec, current.spec)
            if current.spec.enabled == enabled:
                return current
            changed = current.spec.model_copy(update={"enabled": enabled})
            action: HistoryAction = "enabled" if enabled else "disabled"
            try:
                before, after = self.store.put(changed, who, expected_version=current.version, action=action)
            except VersionConflict:
                raise APIError(409, f"flag {name!r} changed meanwhile: retry", code="version_conflict") from None
            self._audit(who, action, name, before, after)
            return after

        record = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return record

    async def disable_flag(self, name: str, actor: str) -> FlagRecord:
        """Turn ``name`` off as ``actor`` (an alert action, say): audited, live at once; 404 when absent."""
        return await self.set_enabled(name, False, None, actor)

    async def delete(self, name: str, principal: Principal, *, expected_version: int | None = None) -> FlagRecord:
        def write() -> FlagRecord:
            current = self.store.get(name)
            if current is None:
                raise missing_flag(name)
            self._authorize(principal, name, current.spec, None)
            try:
                removed = self.store.delete(name, principal.actor, expected_version=expected_version)
            except VersionConflict as exc:
                raise conflict(name, exc, expected_version) from None
            if removed is None:
                raise missing_flag(name)
            self._audit(principal.actor, "deleted", name, removed, None)
            return removed

        record = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return record
