"""What models and prompts have in common: immutable versions and movable pointers, served to the API.

:class:`Catalog` is the serving class behind ``/api/registry/models`` and
``/api/registry/prompts``: it runs the blocking store calls in worker
threads, checks who may move which pointer, appends every move to the audit
log and refreshes the live registry so a move takes effect at once::

    catalog = Catalog("model", db, live, audit, settings)
    await catalog.move("support-bot", "production", 2, reason="eval passed", principal=admin)
"""

from __future__ import annotations

import logging
import re
from typing import Any, Generic, Protocol

import anyio

from lmdeck.db import Database
from lmdeck.policy.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.registry.labels import POINTER_PLURAL, POINTER_WORD, Action, LabelMove, LabelStore, check_label
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.versions import Kind, SpecT, Version, VersionStore
from lmdeck.settings import REGISTRY_NAME, Settings

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

    # -- reading -------------------------------------------------------------------------------

    async def entries(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            pointers: dict[str, dict[str, int]] = {}
            for p in self.labels.pointers(self.kind):
                pointers.setdefault(p.name, {})[p.label] = p.version
            return [{**e.to_dict(), self.plural: pointers.get(e.name, {})} for e in self.versions.entries()]

        return await anyio.to_thread.run_sync(read)

    async def show(self, name: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            entry = self.versions.entry(name)
            pointers = {p.label: p.version for p in self.labels.pointers(self.kind, name)}
            versions = [v.to_dict() for v in self.versions.versions(name)]
            return {**entry.to_dict(), self.plural: pointers, "versions": versions}

        return await anyio.to_thread.run_sync(read)

    async def version(self, name: str, number: int) -> Version[SpecT]:
        return await anyio.to_thread.run_sync(self.versions.get, name, number)

    async def history(self, name: str, label: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            self.versions.entry(name)
            return [m.to_dict() for m in self.labels.history(self.kind, name, label, limit=limit)]

        return await anyio.to_thread.run_sync(read)

    # -- writing -------------------------------------------------------------------------------

    async def register(self, name: str, description: str | None, principal: Principal) -> dict[str, Any]:
        check_name(self.kind, name)
        entry = await anyio.to_thread.run_sync(self.versions.describe, name, description, actor_of(principal))
        await self.live.refresh()
        return entry.to_dict()

    async def create_version(
        self, name: str, spec: SpecT, principal: Principal, description: str | None = None
    ) -> Version[SpecT]:
        check_name(self.kind, name)
        self.validate(spec)
        actor = actor_of(principal)

        def write() -> Version[SpecT]:
            created = self.versions.create(name, spec, actor, description)
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
            self.versions.entry(name)
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
            self.versions.entry(name)
            move = self.labels.rollback(
                self.kind, name, label, actor=actor_of(principal), reason=reason, expected_version=expected_version
            )
            self.record_move(move)
            return move

        move = await anyio.to_thread.run_sync(write)
        await self.live.refresh()
        return {"changed": True, **move.to_dict()}
