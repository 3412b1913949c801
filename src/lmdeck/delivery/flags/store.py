"""Where flags live: the current specs and the history of every change (blocking: call off the loop).

    store = FlagStore(db)
    record = store.put(spec, actor="key:k1")          # created or updated: version 1, 2, ...
    store.history("support-v2")                       # [FlagHistoryEntry(version=2, ...), ...] newest first
    store.revision()                                  # grows with every change, in any process

Each write and its history row commit together; ``expected_version`` makes a write conditional
(:class:`VersionConflict` when the flag moved on, or exists when 0 was expected).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.protocol.flags import FlagHistoryEntry, FlagRecord, FlagSpec, HistoryAction


class VersionConflict(Exception):
    """The flag's version is not the one the write expected; ``current`` is its version (0: absent)."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


def _spec_json(spec: FlagSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _record(row: Any) -> FlagRecord:
    return FlagRecord(
        spec=FlagSpec.model_validate_json(row.spec),
        version=int(row.version),
        created_at=float(row.created_at),
        created_by=row.created_by,
        updated_at=float(row.updated_at),
        updated_by=row.updated_by,
    )


class FlagStore:
    """The ``delivery_flags`` and ``delivery_flag_history`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[FlagRecord]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM delivery_flags ORDER BY name")).all()
        return [_record(r) for r in rows]

    def get(self, name: str) -> FlagRecord | None:
        with self.db.engine.connect() as conn:
            return self._get(conn, name)

    def _get(self, conn: Connection, name: str) -> FlagRecord | None:
        row = conn.execute(text("SELECT * FROM delivery_flags WHERE name = :n"), {"n": name}).first()
        return _record(row) if row is not None else None

    def revision(self) -> int:
        """The number of changes ever made (it only grows)."""
        with self.db.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM delivery_flag_history")).scalar_one())

    def _next_version(self, conn: Connection, name: str) -> int:
        found = conn.execute(
            text("SELECT MAX(version) FROM delivery_flag_history WHERE name = :n"), {"n": name}
        ).scalar_one()
        return int(found or 0) + 1

    def _log(
        self, conn: Connection, name: str, version: int, action: HistoryAction, spec: FlagSpec | None, actor: str
    ) -> None:
        conn.execute(
            text(
                "INSERT INTO delivery_flag_history (name, version, action, spec, actor, at) "
                "VALUES (:n, :v, :a, :s, :actor, :at)"
            ),
            {
                "n": name,
                "v": version,
                "a": action,
                "s": _spec_json(spec) if spec is not None else None,
                "actor": actor,
                "at": time.time(),
            },
        )

    def put(
        self, spec: FlagSpec, actor: str, *, expected_version: int | None = None, action: HistoryAction | None = None
    ) -> tuple[FlagRecord | None, FlagRecord]:
        """Create or replace ``spec``; (the record before, the record after).

        ``expected_version``: the version the caller last saw (0: it must not exist yet).
        ``action`` names the change in the history (default: created or updated).
        """
        with self.db.engine.begin() as conn:
            before = self._get(conn, spec.name)
            current = before.version if before is not None else 0
            if expected_version is not None and expected_version != current:
                raise VersionConflict(current)
            version = self._next_version(conn, spec.name)
            now = time.time()
            params = {"n": spec.name, "s": _spec_json(spec), "v": version, "t": now, "actor": actor}
            if before is None:
                conn.execute(
                    text(
                        "INSERT INTO delivery_flags (name, spec, version, created_at, created_by, updated_at, "
                        "updated_by) VALUES (:n, :s, :v, :t, :actor, :t, :actor)"
                    ),
                    params,
                )
            else:
                conn.execute(
                    text(
                        "UPDATE delivery_flags SET spec = :s, version = :v, updated_at = :t, updated_by = :actor "
                        "WHERE name = :n"
                    ),
                    params,
                )
            self._log(conn, spec.name, version, action or ("created" if before is None else "updated"), spec, actor)
            after = self._get(conn, spec.name)
        assert after is not None
        return before, after

    def delete(self, name: str, actor: str, *, expected_version: int | None = None) -> FlagRecord | None:
        """Remove a flag (its history stays); the record removed, or None when there was none."""
        with self.db.engine.begin() as conn:
            before = self._get(conn, name)
            if before is None:
                return None
            if expected_version is not None and expected_version != before.version:
                raise VersionConflict(before.version)
            conn.execute(text("DELETE FROM delivery_flags WHERE name = :n"), {"n": name})
            self._log(conn, name, self._next_version(conn, name), "deleted", None, actor)
        return before

    def history(self, name: str, limit: int = 100) -> list[FlagHistoryEntry]:
        """The flag's changes, newest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT name, version, action, spec, actor, at FROM delivery_flag_history "
                    "WHERE name = :n ORDER BY version DESC LIMIT :l"
                ),
                {"n": name, "l": limit},
            ).all()
        return [
            FlagHistoryEntry(
                name=r.name,
                version=int(r.version),
                action=r.action,
                spec=FlagSpec.model_validate_json(r.spec) if r.spec is not None else None,
                actor=r.actor,
                at=float(r.at),
            )
            for r in rows
        ]
