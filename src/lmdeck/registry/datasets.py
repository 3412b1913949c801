"""Datasets: immutable versions of JSONL rows, named by their content hash.

A row is ``{"input": ..., "expected": ..., "metadata": {...}, "trace_id": ...}``;
``trace_id`` is its provenance when it came from a stored trace. A version's
digest is the SHA-256 of its rows as canonical JSON lines, so uploading the
same rows again returns the existing version instead of a new one::

    store = DatasetStore(db)
    version, created = store.create("support-evals", [DatasetRow(input="2+2", expected="4")], actor="key:admin")
    again, created_again = store.create("support-evals", [DatasetRow(input="2+2", expected="4")], actor="key:admin")
    assert again.version == version.version and not created_again
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol import APIError
from lmdeck.protocol.limits import is_ascii_int, parse_int
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard
from lmdeck.registry.owners import OwnerColumns, owner_of_row
from lmdeck.registry.sql import bump_revision, dumps, loads, now

_ATTEMPTS = 5
_DIGEST_PREFIX = re.compile(r"[0-9a-f]{8,64}")


def canonical(row: DatasetRow) -> str:
    """A row as canonical JSON (sorted keys), the form its digest and the store use."""
    return dumps(row.model_dump(mode="json"))


def rows_digest(rows: Sequence[DatasetRow]) -> str:
    """SHA-256 of the rows as canonical JSON lines."""
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: int
    digest: str
    row_count: int
    source: dict[str, Any] | None
    description: str | None
    created_at: float
    created_by: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "digest": self.digest,
            "row_count": self.row_count,
            "source": self.source,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


_VERSION_COLUMNS = "name, version, digest, row_count, source, description, created_at, created_by"


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        str(row[0]), int(row[1]), str(row[2]), int(row[3]), loads(row[4]), row[5], float(row[6]), row[7]
    )


def card_not_found(name: str, version: int) -> APIError:
    return APIError(
        404,
        f"version {version} of dataset {name!r} has no data card: a fine-tuning job prepares one "
        "(`lmdeck fine-tuning create`)",
        code="not_found",
    )


def dataset_not_found(name: str, version: int | str | None = None) -> APIError:
    what = f"dataset {name!r}" if version is None else f"version {version} of dataset {name!r}"
    return APIError(404, f"no {what}; list them with `lmdeck datasets list`", code="not_found")


class DatasetStore:
    """The ``registry_dataset*`` tables (blocking: call off the event loop)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owners = OwnerColumns("registry_datasets")

    def owner(self, name: str) -> Owner | None:
        """Who owns dataset ``name`` (None when there is none)."""
        with self.db.engine.connect() as conn:
            return self.owners.get(conn, name)

    def set_owner(self, name: str, owner: Owner) -> None:
        with self.db.engine.begin() as conn:
            self.owners.set(conn, name, owner)
            bump_revision(conn)

    def _existing(self, conn: Connection, name: str, digest: str) -> DatasetVersion | None:
        row = conn.execute(
            text(f"SELECT {_VERSION_COLUMNS} FROM registry_dataset_versions WHERE name = :n AND digest = :d"),
            {"n": name, "d": digest},
        ).first()
        return _version(row) if row else None

    def create(
        self,
        name: str,
        rows: Sequence[DatasetRow],
        *,
        actor: str | None,
        description: str | None = None,
        source: dict[str, Any] | None = None,
        owner: Owner | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """The version holding exactly ``rows``: an existing one with the same digest, or a new one;
        ``owner`` owns the dataset when this creates it (default: the default team)."""
        if not rows:
            raise APIError(400, "a dataset version needs at least one row", param="rows", code="empty_dataset")
        digest = rows_digest(rows)
        for attempt in range(_ATTEMPTS):
            try:
                with self.db.engine.begin() as conn:
                    found = self._existing(conn, name, digest)
                    if found is not None:
                        return found, False
                    return self._insert(conn, name, rows, digest, actor, description, source, owner), True
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise APIError(409, f"dataset {name!r} is being changed concurrently: retry") from None
        raise AssertionError("unreachable")

    def _insert(
        self,
        conn: Connection,
        name: str,
        rows: Sequence[DatasetRow],
        digest: str,
        actor: str | None,
        description: str | None,
        source: dict[str, Any] | None,
        owner: Owner | None,
    ) -> DatasetVersion:
        at = now()
        if conn.execute(text("SELECT 1 FROM registry_datasets WHERE name = :n"), {"n": name}).first() is None:
            owner = owner or Owner()
            conn.execute(
                text(
                    "INSERT INTO registry_datasets (name, description, created_at, created_by, team_id, visibility) "
                    "VALUES (:n, :d, :t, :a, :team, :vis)"
                ),
                {"n": name, "d": description, "t": at, "a": actor, "team": owner.team_id, "vis": owner.visibility},
            )
        latest = conn.execute(
            text("SELECT MAX(version) FROM registry_dataset_versions WHERE name = :n"), {"n": name}
        ).scalar_one_or_none()
        version = DatasetVersion(name, int(latest or 0) + 1, digest, len(rows), source, description, at, actor)
        conn.execute(
            text(
                f"INSERT INTO registry_dataset_versions ({_VERSION_COLUMNS}) VALUES (:n, :v, :d, :c, :s, :desc, :t, :a)"
            ),
            {
                "n": name,
                "v": version.version,
                "d": digest,
                "c": len(rows),
                "s": dumps(source) if source is not None else None,
                "desc": description,
                "t": at,
                "a": actor,
            },
        )
        conn.execute(
            text(
                "INSERT INTO registry_dataset_rows (name, version, idx, row_data, trace_id) VALUES (:n, :v, :i, :r, :tid)"
            ),
            [
                {"n": name, "v": version.version, "i": i, "r": canonical(row), "tid": row.trace_id}
                for i, row in enumerate(rows)
            ],
        )
        bump_revision(conn)
        return version

    def entries(self, where: str = "1 = 1", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The datasets matching the SQL condition ``where`` on ``registry_datasets d`` (all by default)."""
        sql = text(
            "SELECT d.name, d.description, MAX(v.version), d.created_at, d.created_by, d.team_id, d.visibility "
            "FROM registry_datasets d LEFT JOIN registry_dataset_versions v ON v.name = d.name "
            f"WHERE {where} "
            "GROUP BY d.name, d.description, d.created_at, d.created_by, d.team_id, d.visibility ORDER BY d.name"
        )
        with self.db.engine.connect() as conn:
            return [
                {
                    "name": r[0],
                    "description": r[1],
                    "latest_version": r[2],
                    "created_at": float(r[3]),
                    "created_by": r[4],
                    **owner_of_row(r[5], r[6]).to_dict(),
                }
                for r in conn.execute(sql, params or {})
            ]

    def versions(self, name: str) -> list[DatasetVersion]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_VERSION_COLUMNS} FROM registry_dataset_versions WHERE name = :n ORDER BY version"),
                {"n": name},
            ).all()
        if not rows:
            raise dataset_not_found(name)
        return [_version(row) for row in rows]

    def version(self, name: str, ref: int | str) -> DatasetVersion:
        """A version by number, or by its digest (or a prefix of 8+ hex digits)."""
        with self.db.engine.connect() as conn:
            if isinstance(ref, int) or is_ascii_int(ref):
                number = ref if isinstance(ref, int) else parse_int(ref, "ref", lo=1)
                rows = conn.execute(
                    text(f"SELECT {_VERSION_COLUMNS} FROM registry_dataset_versions WHERE name = :n AND version = :v"),
                    {"n": name, "v": number},
                ).all()
            elif _DIGEST_PREFIX.fullmatch(ref.lower()):
                rows = conn.execute(
                    text(
                        f"SELECT {_VERSION_COLUMNS} FROM registry_dataset_versions WHERE name = :n AND digest LIKE :d"
                    ),
                    {"n": name, "d": ref.lower() + "%"},
                ).all()
            else:
                rows = []
        if len(rows) != 1:
            raise dataset_not_found(name, ref)
        return _version(rows[0])

    def rows(self, name: str, version: int, *, offset: int = 0, limit: int = 100) -> list[DatasetRow]:
        with self.db.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT row_data FROM registry_dataset_rows WHERE name = :n AND version = :v "
                    "ORDER BY idx LIMIT :limit OFFSET :offset"
                ),
                {"n": name, "v": version, "limit": limit, "offset": offset},
            ).all()
        return [DatasetRow.model_validate(loads(r[0])) for r in found]

    def set_card(self, name: str, version: int, card: DataCard) -> None:
        """Keep ``card`` with version ``version`` of ``name`` (replacing an earlier one); 404 when there is none."""
        with self.db.engine.begin() as conn:
            changed = conn.execute(
                text("UPDATE registry_dataset_versions SET data_card = :c WHERE name = :n AND version = :v"),
                {"c": dumps(card.model_dump(mode="json")), "n": name, "v": version},
            ).rowcount
        if not changed:
            raise dataset_not_found(name, version)

    def card(self, name: str, version: int) -> DataCard | None:
        """The data card kept with a version (None when none was prepared or the version does not exist)."""
        with self.db.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT data_card FROM registry_dataset_versions WHERE name = :n AND version = :v"),
                {"n": name, "v": version},
            ).scalar_one_or_none()
        return DataCard.model_validate(loads(stored)) if stored is not None else None
