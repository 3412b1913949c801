"""Aliases (models) and labels (prompts): movable names for versions, with their full move history.

``support-bot@production`` and ``support-reply@staging`` are pointers; moving
one writes the pointer and a history row (who, when, from, to, why) in one
transaction. Rollback undoes moves one at a time, replaying the history::

    labels = LabelStore(db, versions)
    labels.move("model", "support-bot", "production", 2, actor="key:admin", reason="v2 passed eval")
    back = labels.rollback("model", "support-bot", "production", actor="key:admin", reason="errors up")
    assert (back.from_version, back.to_version) == (2, 1)

Moves of one pointer are serialised: each transaction holds the pointer's lock
(:func:`lmdeck.db.locks.hold`) from reading where it points to writing the move,
so every history row's ``from_version`` is the previous row's ``to_version`` and
rollback, the deployment history and the audit log read one chain. A caller that
read the pointer earlier passes ``expected_version`` to refuse a lost update::

    labels.move("model", "support-bot", "production", 3, actor="key:ci", reason=None, expected_version=2)
    # APIError 409 version_conflict when production no longer points at 2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.db.locks import hold
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import REGISTRY_NAME
from lmdeck.registry.sql import bump_revision, new_id, now
from lmdeck.registry.versions import Kind, VersionStore, not_found

Action = Literal["move", "rollback", "remove", "apply"]

#: What each kind calls its pointers, for messages and the API.
POINTER_WORD: dict[Kind, str] = {"model": "alias", "prompt": "label"}
POINTER_PLURAL: dict[Kind, str] = {"model": "aliases", "prompt": "labels"}

_LABEL = re.compile(REGISTRY_NAME)

#: The reserved alias/label meaning "the newest version"; it cannot be moved.
LATEST = "latest"


def check_label(kind: Kind, label: str) -> str:
    if label == LATEST:
        raise APIError(400, f"{LATEST!r} always means the newest version and cannot be moved", code="invalid_label")
    if not _LABEL.match(label) or label.isdigit():
        raise APIError(
            400,
            f"{POINTER_WORD[kind]} {label!r} is not a valid name: letters, digits, '.', '_' or '-', "
            "not only digits (a number names a version)",
            code="invalid_label",
        )
    return label


@dataclass(frozen=True)
class Pointer:
    """Where an alias or label points now."""

    kind: Kind
    name: str
    label: str
    version: int
    updated_at: float
    updated_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            POINTER_WORD[self.kind]: self.label,
            "name": self.name,
            "version": self.version,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class LabelMove:
    """One entry of the move history (the deployment history, for model aliases)."""

    id: str
    kind: Kind
    name: str
    label: str
    from_version: int | None
    to_version: int | None
    action: Action
    actor: str | None
    reason: str | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            POINTER_WORD[self.kind]: self.label,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "action": self.action,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at,
        }


_MOVE_COLUMNS = "id, kind, name, label, from_version, to_version, action, actor, reason, at"


def _move(row: Any) -> LabelMove:
    return LabelMove(
        str(row[0]), row[1], str(row[2]), str(row[3]), row[4], row[5], row[6], row[7], row[8], float(row[9])
    )


class LabelStore:
    """The ``registry_labels`` pointers and ``registry_label_moves`` history (blocking: call off the loop)."""

    def __init__(self, db: Database, versions: Mapping[Kind, VersionStore[Any]]) -> None:
        self.db = db
        self.versions = versions

    @staticmethod
    def lock(conn: Connection, kind: Kind, name: str, label: str) -> None:
        """Hold ``name@label``'s lock until ``conn``'s transaction ends (moves of it wait for each other)."""
        hold(conn, f"registry.pointer:{kind}/{name}/{label}")

    @staticmethod
    def check_expected(kind: Kind, name: str, label: str, current: int | None, expected: int | None) -> None:
        """APIError 409 ``version_conflict`` unless the pointer is where the caller expects it."""
        if expected is None or expected == current:
            return
        where = f"points at version {current}" if current is not None else "points at no version"
        raise APIError(
            409,
            f"{name}@{label} {where}, not {expected} as expected_version says: another move came first; "
            f"read the {POINTER_WORD[kind]} again and retry with its current version",
            param="expected_version",
            code="version_conflict",
        )

    def current(self, conn: Connection, kind: Kind, name: str, label: str) -> int | None:
        row = conn.execute(
            text("SELECT version FROM registry_labels WHERE kind = :k AND name = :n AND label = :l"),
            {"k": kind, "n": name, "l": label},
        ).first()
        return int(row[0]) if row else None

    def move_in(
        self,
        conn: Connection,
        kind: Kind,
        name: str,
        label: str,
        version: int | None,
        *,
        actor: str | None,
        reason: str | None,
        action: Action = "move",
        expected_version: int | None = None,
    ) -> LabelMove | None:
        """Point ``name@label`` at ``version`` (None removes it) in ``conn``'s transaction.

        Holds the pointer's lock until the transaction ends. Returns the history entry, or
        None when the pointer already was there; APIError 409 when ``expected_version`` is
        given and the pointer is elsewhere.
        """
        check_label(kind, label)
        self.lock(conn, kind, name, label)
        if version is not None and not self.versions[kind].exists(conn, name, version):
            raise not_found(kind, name, version)
        before = self.current(conn, kind, name, label)
        self.check_expected(kind, name, label, before, expected_version)
        if before == version:
            return None
        at = self._next_at(conn, kind, name, label)
        params = {"k": kind, "n": name, "l": label, "v": version, "t": at, "a": actor}
        if version is None:
            conn.execute(text("DELETE FROM registry_labels WHERE kind = :k AND name = :n AND label = :l"), params)
        elif before is None:
            conn.execute(
                text(
                    "INSERT INTO registry_labels (kind, name, label, version, updated_at, updated_by) "
                    "VALUES (:k, :n, :l, :v, :t, :a)"
                ),
                params,
            )
        else:
            conn.execute(
                text(
                    "UPDATE registry_labels SET version = :v, updated_at = :t, updated_by = :a "
                    "WHERE kind = :k AND name = :n AND label = :l"
                ),
                params,
            )
        move = LabelMove(new_id(), kind, name, label, before, version, action, actor, reason, at)
        conn.execute(
            text(
                f"INSERT INTO registry_label_moves ({_MOVE_COLUMNS}) "
                "VALUES (:id, :k, :n, :l, :f, :v, :action, :a, :r, :t)"
            ),
            {**params, "id": move.id, "f": before, "action": action, "r": reason},
        )
        bump_revision(conn)
        return move

    @staticmethod
    def _next_at(conn: Connection, kind: Kind, name: str, label: str) -> float:
        """Now, or just after the pointer's last move if the clock says otherwise, so history stays in order."""
        last = conn.execute(
            text("SELECT MAX(at) FROM registry_label_moves WHERE kind = :k AND name = :n AND label = :l"),
            {"k": kind, "n": name, "l": label},
        ).scalar()
        at = now()
        return at if last is None or at > float(last) else round(float(last) + 1e-6, 6)

    def move(
        self,
        kind: Kind,
        name: str,
        label: str,
        version: int | None,
        *,
        actor: str | None,
        reason: str | None,
        action: Action = "move",
        expected_version: int | None = None,
    ) -> LabelMove | None:
        with self.db.engine.begin() as conn:
            return self.move_in(
                conn,
                kind,
                name,
                label,
                version,
                actor=actor,
                reason=reason,
                action=action,
                expected_version=expected_version,
            )

    def rollback_target(self, conn: Connection, kind: Kind, name: str, label: str) -> tuple[int, int]:
        """(current version, the version before it), undoing one move at a time."""
        current = self.current(conn, kind, name, label)
        word = POINTER_WORD[kind]
        if current is None:
            raise APIError(404, f"{kind} {name!r} has no {word} {label!r}", code="not_found")
        stack: list[int] = []
        for move in reversed(self.history(kind, name, label, limit=None, conn=conn)):
            if move.action == "rollback":
                if stack:
                    stack.pop()
            elif move.to_version is None:
                stack.clear()
            else:
                stack.append(move.to_version)
        if not stack or stack[-1] != current:
            stack.append(current)
        if len(stack) < 2:
            raise APIError(
                409,
                f"{name}@{label} has no earlier version to roll back to: move it with an explicit version",
                code="nothing_to_roll_back",
            )
        return current, stack[-2]

    def rollback(
        self,
        kind: Kind,
        name: str,
        label: str,
        *,
        actor: str | None,
        reason: str | None,
        expected_version: int | None = None,
    ) -> LabelMove:
        with self.db.engine.begin() as conn:
            self.lock(conn, kind, name, label)
            current, target = self.rollback_target(conn, kind, name, label)
            self.check_expected(kind, name, label, current, expected_version)
            move = self.move_in(conn, kind, name, label, target, actor=actor, reason=reason, action="rollback")
        assert move is not None
        return move

    def pointers(self, kind: Kind, name: str | None = None, conn: Connection | None = None) -> list[Pointer]:
        where = " AND name = :n" if name is not None else ""
        sql = text(
            "SELECT kind, name, label, version, updated_at, updated_by FROM registry_labels "
            f"WHERE kind = :k{where} ORDER BY name, label"
        )
        params = {"k": kind, "n": name}
        if conn is None:
            with self.db.engine.connect() as own:
                rows = own.execute(sql, params).all()
        else:
            rows = conn.execute(sql, params).all()
        return [Pointer(r[0], str(r[1]), str(r[2]), int(r[3]), float(r[4]), r[5]) for r in rows]

    def history(
        self,
        kind: Kind,
        name: str,
        label: str | None = None,
        *,
        limit: int | None = 100,
        conn: Connection | None = None,
    ) -> list[LabelMove]:
        """Moves of ``name``'s pointers (or only ``label``'s), newest first."""
        where = " AND label = :l" if label is not None else ""
        cap = " LIMIT :limit" if limit is not None else ""
        sql = text(
            f"SELECT {_MOVE_COLUMNS} FROM registry_label_moves WHERE kind = :k AND name = :n{where} "
            f"ORDER BY at DESC, id DESC{cap}"
        )
        params = {"k": kind, "n": name, "l": label, "limit": limit}
        if conn is None:
            with self.db.engine.connect() as own:
                rows = own.execute(sql, params).all()
        else:
            rows = conn.execute(sql, params).all()
        return [_move(row) for row in rows]
