"""Immutable versions of registered models and prompts.

A model or prompt is a name with numbered versions 1, 2, 3...; a version is
written once and never changed. Its declared content (``spec``) is stored as
JSON with a digest, which is how ``lmdeck apply`` tells an unchanged version
from a conflicting one and how the bundle hash names exactly what served::

    store = VersionStore(db, "prompt")
    v = store.create("support-reply", PromptVersionSpec(text="Hi {{ name }}"), actor="key:admin")
    assert store.get("support-reply", v.version).digest == v.digest
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec, PromptVersionSpec
from lmdeck.registry.owners import OwnerColumns, owner_of_row
from lmdeck.registry.sql import bump_revision, dumps, loads, now, spec_dict, spec_digest

Kind = Literal["model", "prompt"]
SpecT = TypeVar("SpecT", ModelVersionSpec, PromptVersionSpec)

SPEC_TYPES: dict[Kind, type[BaseModel]] = {"model": ModelVersionSpec, "prompt": PromptVersionSpec}
_ATTEMPTS = 5


@dataclass(frozen=True)
class Version(Generic[SpecT]):
    """One immutable version of a model or prompt."""

    kind: Kind
    name: str
    version: int
    spec: SpecT
    digest: str
    created_at: float
    created_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            **spec_dict(self.spec),
            "digest": self.digest,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Entry:
    """A registered name: its description, newest version number and owner."""

    name: str
    description: str | None
    latest_version: int | None
    created_at: float
    created_by: str | None
    owner: Owner = field(default_factory=Owner)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "latest_version": self.latest_version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            **self.owner.to_dict(),
        }


def not_found(kind: Kind, name: str, version: int | None = None) -> APIError:
    what = f"{kind} {name!r}" if version is None else f"version {version} of {kind} {name!r}"
    hint = f"; list them with `lmdeck {kind}s list`" if version is None else f"; see `lmdeck {kind}s show {name}`"
    return APIError(404, f"no {what}{hint}", code="not_found")


class VersionStore(Generic[SpecT]):
    """The ``registry_<kind>s`` and ``registry_<kind>_versions`` tables (blocking: call off the event loop)."""

    def __init__(self, db: Database, kind: Kind) -> None:
        self.db = db
        self.kind = kind
        self._names = f"registry_{kind}s"
        self._versions = f"registry_{kind}_versions"
        self._spec_type = SPEC_TYPES[kind]
        self.owners = OwnerColumns(self._names)

    def _version(self, row: Any) -> Version[SpecT]:
        try:
            spec: Any = self._spec_type.model_validate(loads(row[2]))
        except ValidationError as exc:
            raise APIError(500, f"stored {self.kind} {row[0]!r} v{row[1]} is unreadable: {exc}") from exc
        return Version(self.kind, str(row[0]), int(row[1]), spec, str(row[3]), float(row[4]), row[5])

    def ensure(
        self,
        conn: Connection,
        name: str,
        actor: str | None,
        description: str | None = None,
        owner: Owner | None = None,
    ) -> None:
        """Register ``name`` (owned by ``owner``) if it is new; update its description when one is given."""
        found = conn.execute(text(f"SELECT name FROM {self._names} WHERE name = :n"), {"n": name}).first()
        if found is None:
            owner = owner or Owner()
            conn.execute(
                text(
                    f"INSERT INTO {self._names} (name, description, created_at, created_by, team_id, visibility) "
                    "VALUES (:n, :d, :t, :a, :team, :vis)"
                ),
                {"n": name, "d": description, "t": now(), "a": actor, "team": owner.team_id, "vis": owner.visibility},
            )
            bump_revision(conn)
        elif description is not None:
            conn.execute(
                text(f"UPDATE {self._names} SET description = :d WHERE name = :n"), {"n": name, "d": description}
            )

    def add(self, conn: Connection, name: str, spec: SpecT, actor: str | None) -> Version[SpecT]:
        """Write the next version of ``name`` inside ``conn``'s transaction.

        ``spec.version``, when given, must be that next number: versions are never rewritten.
        """
        self.ensure(conn, name, actor)
        latest = conn.execute(
            text(f"SELECT MAX(version) FROM {self._versions} WHERE name = :n"), {"n": name}
        ).scalar_one_or_none()
        number = int(latest or 0) + 1
        if spec.version is not None and spec.version != number:
            if spec.version < number:
                raise APIError(
                    409,
                    f"version {spec.version} of {self.kind} {name!r} exists and versions are immutable: "
                    f"add version {number} instead",
                    code="version_exists",
                )
            raise APIError(
                400, f"versions of {self.kind} {name!r} are numbered in order: the next is {number}", code="version_gap"
            )
        content = spec_dict(spec)
        content_digest = spec_digest(spec)
        at = now()
        conn.execute(
            text(
                f"INSERT INTO {self._versions} (name, version, spec, digest, created_at, created_by) "
                "VALUES (:n, :v, :s, :d, :t, :a)"
            ),
            {"n": name, "v": number, "s": dumps(content), "d": content_digest, "t": at, "a": actor},
        )
        bump_revision(conn)
        stored: Any = spec.model_copy(update={"version": number})
        return Version(self.kind, name, number, stored, content_digest, at, actor)

    def create(
        self,
        name: str,
        spec: SpecT,
        actor: str | None,
        description: str | None = None,
        owner: Owner | None = None,
    ) -> Version[SpecT]:
        """A new version in its own transaction, retried when another writer took the same number;
        ``owner`` owns ``name`` when this registers it."""
        for attempt in range(_ATTEMPTS):
            try:
                with self.db.engine.begin() as conn:
                    self.ensure(conn, name, actor, description, owner)
                    return self.add(conn, name, spec, actor)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise APIError(409, f"{self.kind} {name!r} is being changed concurrently: retry") from None
        raise AssertionError("unreachable")

    def describe(self, name: str, description: str | None, actor: str | None, owner: Owner | None = None) -> Entry:
        with self.db.engine.begin() as conn:
            self.ensure(conn, name, actor, description, owner)
        return self.entry(name)

    def owner(self, name: str) -> Owner | None:
        """Who owns ``name`` (None when it is not registered)."""
        with self.db.engine.connect() as conn:
            return self.owners.get(conn, name)

    def set_owner(self, name: str, owner: Owner) -> None:
        with self.db.engine.begin() as conn:
            self.owners.set(conn, name, owner)
            bump_revision(conn)

    def get(self, name: str, version: int, conn: Connection | None = None) -> Version[SpecT]:
        sql = text(
            f"SELECT name, version, spec, digest, created_at, created_by FROM {self._versions} "
            "WHERE name = :n AND version = :v"
        )
        if conn is None:
            with self.db.engine.connect() as own:
                row = own.execute(sql, {"n": name, "v": version}).first()
        else:
            row = conn.execute(sql, {"n": name, "v": version}).first()
        if row is None:
            raise not_found(self.kind, name, version)
        return self._version(row)

    def versions(self, name: str, conn: Connection | None = None) -> list[Version[SpecT]]:
        """Every version of ``name``, oldest first (all names when ``name`` is empty)."""
        where = "WHERE name = :n " if name else ""
        sql = text(
            f"SELECT name, version, spec, digest, created_at, created_by FROM {self._versions} {where}"
            "ORDER BY name, version"
        )
        if conn is None:
            with self.db.engine.connect() as own:
                rows = own.execute(sql, {"n": name}).all()
        else:
            rows = conn.execute(sql, {"n": name}).all()
        return [self._version(row) for row in rows]

    def entries(self, name: str | None = None) -> list[Entry]:
        """Registered names with their newest version (only ``name`` when given)."""
        where = "WHERE e.name = :n " if name is not None else ""
        sql = text(
            f"SELECT e.name, e.description, MAX(v.version), e.created_at, e.created_by, e.team_id, e.visibility "
            f"FROM {self._names} e LEFT JOIN {self._versions} v ON v.name = e.name {where}"
            "GROUP BY e.name, e.description, e.created_at, e.created_by, e.team_id, e.visibility ORDER BY e.name"
        )
        with self.db.engine.connect() as conn:
            return [
                Entry(r[0], r[1], r[2], float(r[3]), r[4], owner_of_row(r[5], r[6]))
                for r in conn.execute(sql, {"n": name})
            ]

    def entry(self, name: str) -> Entry:
        found = self.entries(name)
        if not found:
            raise not_found(self.kind, name)
        return found[0]

    def exists(self, conn: Connection, name: str, version: int) -> bool:
        sql = text(f"SELECT 1 FROM {self._versions} WHERE name = :n AND version = :v")
        return conn.execute(sql, {"n": name, "v": version}).first() is not None
