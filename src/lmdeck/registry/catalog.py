"""What models and prompts have in common: immutable versions and movable pointers, served to the API.

:class:`Catalog` is the serving class behind ``/api/registry/models`` and
``/api/registry/prompts``: it runs the blocking store calls in worker
threads, asks :mod:`lmdeck.policy.ownership` who may read, change or move
what (another team's entry is a 404 unless it is shared), appends every move
to the audit log and refreshes the live registry so a move takes effect at once::

    catalog = Catalog("model", db, live, audit, settings)
    await catalog.move("support-bot", "production", 2, reason="eval passed", principal=admin)
"""

from __future__ import annotations

import logging
import re
from typing import Any, Generic, Protocol

import anyio

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    Owner,
    RouteOwner,
    check_add,
    check_change,
    check_move_traffic,
    check_read,
    may_read,
    owner_after_update,
    owner_for_new,
)
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.registry import REGISTRY_NAME
from lmdeck.registry.labels import LATEST, POINTER_PLURAL, POINTER_WORD, Action, LabelMove, LabelStore, check_label
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.owners import resolve_team
from lmdeck.registry.versions import Kind, SpecT, Version, VersionStore, not_found
from lmdeck.settings import Settings

log = logging.getLogger(__name__)

_NAME = re.compile(REGISTRY_NAME)


class AuditTrail(Protocol):
    """Where admin actions are appended (:class:`lmdeck.policy.audit.AuditLog`)."""

    def append(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None) -> Any: ...


def actor_of(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise APIError(
            400,
            f"{kind} name {name!r} is not valid: start with a letter or digit, then letters, digits, '.', '_' or '-'",
            param="name",
            code="invalid_name",
        )
    return name


class Catalog(Generic[SpecT]):
    """Versions and pointers of one kind (``model`` or ``prompt``)."""

    def __init__(
        self, kind: Kind, db: Database, live: LiveRegistry, audit: AuditTrail | None, settings: Settings
    ) -> None:
        self.kind = kind
        self.word = POINTER_WORD[kind]
        self.plural = POINTER_PLURAL[kind]
        self.versions: VersionStore[SpecT] = VersionStore(db, kind)
        self.labels = LabelStore(db, {kind: self.versions})
        self.live = live
        self.audit = audit
        self.protected = settings.registry.protected_labels

    def validate(self, spec: SpecT) -> None:
        """Refuse a version that could never serve (overridden per kind); raise APIError(400)."""

    def _audit(self, actor: str, action: str, target: str, before: Any, after: Any) -> None:
        if self.audit is None:
            return
        try:
            self.audit.append(actor, action, target, before=before, after=after)
        except Exception:
            # The change itself is committed; a missing audit entry must be loud, not undo it.
            log.exception("could not append %s on %s to the audit log", action, target)

    # -- ownership -----------------------------------------------------------------------------

    def what(self, name: str) -> str:
        return f"{self.kind} {name!r}"

    def readable(self, name: str, principal: Principal) -> Owner:
        """``name``'s owner when ``principal`` may read it; else the 404 of a missing entry (blocking)."""
        return check_read(principal, self.versions.owner(name), lambda: not_found(self.kind, name))

    def changeable(self, name: str, principal: Principal) -> Owner:
        """``name``'s owner when ``principal`` may change it; 404 or 403 otherwise (blocking)."""
        return check_change(principal, self.versions.owner(name), self.what(name), lambda: not_found(self.kind, name))

    def traffic_routes(self, name: str, labels: set[str] | None) -> list[RouteOwner]:
        """The routes whose traffic moving ``name@label`` (for a label in ``labels``; None: any) moves
        (blocking)."""
        return []

    def check_traffic(self, name: str, labels: set[str] | None, principal: Principal, action: str) -> None:
        check_move_traffic(principal, self.traffic_routes(name, labels), action)

    def new_owner(self, principal: Principal, team: str | None, visibility: Visibility | None) -> Owner:
        """The owner of an entry ``principal`` registers now (blocking: resolves the team's name)."""
        if team is None:
            return owner_for_new(principal, None, visibility)
        with self.versions.db.engine.connect() as conn:
            return owner_for_new(principal, resolve_team(conn, team), visibility)

    async def update_owner(
        self,
        name: str,
        principal: Principal,
        *,
        team: str | None = None,
        team_given: bool = False,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Share, unshare or (admins) give ``name`` to another team."""

        def write() -> dict[str, Any]:
            current = self.changeable(name, principal)
            resolved = team
            if team_given and team is not None:
                with self.versions.db.engine.connect() as conn:
                    resolved = resolve_team(conn, team)
            changed = owner_after_update(
                principal, current, self.what(name), team=resolved, team_given=team_given, visibility=visibility
            )
            if changed != current:
                self.versions.set_owner(name, changed)
                self._audit(
                    actor_of(principal),
                    f"{self.kind}.owner.changed",
                    f"{self.kind}:{name}",
                    current.to_dict(),
                    changed.to_dict(),
                )
            return self.versions.entry(name).to_dict()

        entry = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return entry

    # -- reading -------------------------------------------------------------------------------

    async def entries(self, principal: Principal) -> list[dict[str, Any]]:
        """The entries ``principal`` may read, with their pointers."""

        def read() -> list[dict[str, Any]]:
            pointers: dict[str, dict[str, int]] = {}
            for p in self.labels.pointers(self.kind):
                pointers.setdefault(p.name, {})[p.label] = p.version
            return [
                {**e.to_dict(), self.plural: pointers.get(e.name, {})}
                for e in self.versions.entries()
                if may_read(principal, e.owner)
            ]

        return await anyio.to_thread.run_sync(read)

    async def show(self, name: str, principal: Principal) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            self.readable(name, principal)
            entry = self.versions.entry(name)
            pointers = {p.label: p.version for p in self.labels.pointers(self.kind, name)}
            versions = [v.to_dict() for v in self.versions.versions(name)]
            return {**entry.to_dict(), self.plural: pointers, "versions": versions}

        return await anyio.to_thread.run_sync(read)

    async def version(self, name: str, number: int, principal: Principal) -> Version[SpecT]:
        def read() -> Version[SpecT]:
            self.readable(name, principal)
            return self.versions.get(name, number)

        return await anyio.to_thread.run_sync(read)

    async def history(
        self, name: str, principal: Principal, label: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            self.readable(name, principal)
            return [m.to_dict() for m in self.labels.history(self.kind, name, label, limit=limit)]

        return await anyio.to_thread.run_sync(read)

    # -- writing -------------------------------------------------------------------------------

    async def register(
        self,
        name: str,
        description: str | None,
        principal: Principal,
        *,
        team: str | None = None,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Register ``name`` for the caller's team (an admin may name another ``team``), or update
        the description of an entry the caller may change (its owner changes with ``PATCH``)."""
        check_name(self.kind, name)

        def write() -> dict[str, Any]:
            if check_add(principal, self.versions.owner(name), self.what(name)) is not None:
                if team is not None or visibility is not None:
                    raise APIError(
                        409,
                        f"{self.what(name)} exists: change its team or visibility with PATCH",
                        code="already_registered",
                    )
                return self.versions.describe(name, description, actor_of(principal)).to_dict()
            # Routes may already follow a name nobody registered: taking it takes their traffic.
            self.check_traffic(name, None, principal, f"registering {self.what(name)}")
            owner = self.new_owner(principal, team, visibility)
            return self.versions.describe(name, description, actor_of(principal), owner).to_dict()

        entry = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return entry

    async def create_version(
        self, name: str, spec: SpecT, principal: Principal, description: str | None = None
    ) -> Version[SpecT]:
        check_name(self.kind, name)
        self.validate(spec)
        actor = actor_of(principal)

        def write() -> Version[SpecT]:
            owner = None
            if check_add(principal, self.versions.owner(name), self.what(name)) is None:
                self.check_traffic(name, None, principal, f"registering {self.what(name)}")
                owner = owner_for_new(principal)
            else:
                self.check_traffic(name, {LATEST}, principal, f"adding a version to {self.what(name)}")
            created = self.versions.create(name, spec, actor, description, owner)
            self._audit(
                actor,
                f"{self.kind}.version.created",
                f"{self.kind}:{name}",
                None,
                {"version": created.version, "digest": created.digest},
            )
            return created

        created = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return created

    def check_may_move(self, label: str, principal: Principal) -> None:
        needed = self.protected.get(label, "developer")
        if not principal.at_least(needed):
            raise APIError(
                403,
                f"moving the protected {self.word} {label!r} needs the {needed!r} role; this key has {principal.role!r}",
                code="forbidden",
            )

    def check_movable(self, name: str, label: str, principal: Principal) -> None:
        """Refuse (404/403) what :meth:`move` would refuse ``principal`` on ``name@label`` (blocking).

        A release checks its creator with it, since its controller later moves the pointer itself.
        """
        self.check_may_move(label, principal)
        self.changeable(name, principal)
        self.check_traffic(name, {label}, principal, f"moving {name}@{label}")

    def record_move(self, move: LabelMove) -> None:
        target = f"{self.kind}:{move.name}@{move.label}"
        action = {"move": "moved", "rollback": "rolled_back", "remove": "removed", "apply": "moved"}[move.action]
        after = {"version": move.to_version, "reason": move.reason, "via": move.action}
        self._audit(
            move.actor or "unknown", f"{self.kind}.{self.word}.{action}", target, {"version": move.from_version}, after
        )

    async def move(
        self,
        name: str,
        label: str,
        version: int | None,
        *,
        reason: str | None,
        principal: Principal,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Point ``name@label`` at ``version`` (None removes it); a no-op reports ``changed: false``.

        With ``expected_version`` the move happens only if the pointer is still there (else 409).
        """
        check_label(self.kind, label)
        self.check_may_move(label, principal)
        action: Action = "move" if version is not None else "remove"

        def write() -> LabelMove | None:
            self.check_movable(name, label, principal)
            move = self.labels.move(
                self.kind,
                name,
                label,
                version,
                actor=actor_of(principal),
                reason=reason,
                action=action,
                expected_version=expected_version,
            )
            if move is not None:
                self.record_move(move)
            return move

        move = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        if move is None:
            return {"changed": False, "name": name, self.word: label, "version": version}
        return {"changed": True, **move.to_dict()}

    async def rollback(
        self,
        name: str,
        label: str,
        *,
        reason: str | None,
        principal: Principal,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Move ``name@label`` back to the version it pointed at before its last move (409 when
        ``expected_version`` is given and the pointer is elsewhere)."""
        check_label(self.kind, label)
        self.check_may_move(label, principal)

        def write() -> LabelMove:
            self.changeable(name, principal)
            self.check_traffic(name, {label}, principal, f"rolling back {name}@{label}")
            move = self.labels.rollback(
                self.kind, name, label, actor=actor_of(principal), reason=reason, expected_version=expected_version
            )
            self.record_move(move)
            return move

        move = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return {"changed": True, **move.to_dict()}
