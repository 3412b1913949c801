"""Alert rules, channels and silences as stored, each change audited; blocking (call off the event loop).

    store = AlertConfigStore(db, audit)
    store.put_rule(AlertRuleSpec(...), actor="key_admin")     # audited as alerts.rule.put
    store.rules()                                             # [AlertRuleSpec, ...] by name
    store.add_silence(SilenceSpec(...), actor="key_admin")    # returns the stored silence with its id
    store.active_silences(now)

Incidents, their history and the outbox live in :mod:`lmdeck.monitoring.incidents`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.alerts import AlertRuleSpec, AlertsDeclared, ChannelSpec, SilenceSpec

SpecT = TypeVar("SpecT", AlertRuleSpec, ChannelSpec)
SpecKind = Literal["rule", "channel"]
_TABLES: dict[SpecKind, str] = {"rule": "alert_rules", "channel": "alert_channels"}
#: One audit entry to append once the transaction commits: actor, action, target, before, after.
_Audit = tuple[str, str, str, Any, Any]
_MODELS: dict[SpecKind, type[BaseModel]] = {"rule": AlertRuleSpec, "channel": ChannelSpec}


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


def new_id(prefix: str) -> str:
    """``prefix`` and 20 hex digits ordered by time (milliseconds first)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{os.urandom(4).hex()}"


@dataclass(frozen=True)
class Silence:
    """A stored silence: mutes notifications of alerts whose labels match every matcher while active."""

    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    comment: str
    created_by: str | None
    created_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, Any]) -> bool:
        return all(str(labels.get(name)) == value for name, value in self.matchers.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": self.matchers,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class ApplyChange:
    """One change ``apply`` makes: ``op`` is create, update or delete."""

    op: Literal["create", "update", "delete"]
    subject: Literal["rule", "channel", "silence"]
    name: str

    @property
    def description(self) -> str:
        return f"{self.op} {self.subject} {self.name}"


class AlertConfigStore:
    """Rules, channels and silences in the database; every write is audited (``alerts.<subject>.<op>``)."""

    def __init__(self, db: Database, audit: AuditLog | None, clock: Any = time.time) -> None:
        self.db = db
        self.audit = audit
        self.clock = clock

    # -- rules and channels --------------------------------------------------------------------

    def _specs(self, kind: SpecKind, conn: Connection) -> dict[str, Any]:
        model = _MODELS[kind]
        rows = conn.execute(text(f"SELECT name, spec FROM {_TABLES[kind]} ORDER BY name")).all()
        return {str(name): model.model_validate(loads(spec)) for name, spec in rows}

    def rules(self) -> list[AlertRuleSpec]:
        with self.db.engine.connect() as conn:
            return list(self._specs("rule", conn).values())

    def rule(self, name: str) -> AlertRuleSpec | None:
        with self.db.engine.connect() as conn:
            found: AlertRuleSpec | None = self._specs("rule", conn).get(name)
            return found

    def channels(self) -> list[ChannelSpec]:
        with self.db.engine.connect() as conn:
            return list(self._specs("channel", conn).values())

    def channel(self, name: str) -> ChannelSpec | None:
        with self.db.engine.connect() as conn:
            found: ChannelSpec | None = self._specs("channel", conn).get(name)
            return found

    def _put(
        self, conn: Connection, kind: SpecKind, spec: BaseModel, actor: str, audits: list[_Audit]
    ) -> ApplyChange | None:
        table = _TABLES[kind]
        name = str(getattr(spec, "name"))  # noqa: B009
        stored = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        row = conn.execute(text(f"SELECT spec FROM {table} WHERE name = :n"), {"n": name}).first()
        before = loads(row[0]) if row else None
        if before == stored:
            return None
        params = {"n": name, "s": dumps(stored), "t": self.clock(), "a": actor}
        if row is None:
            conn.execute(text(f"INSERT INTO {table} VALUES (:n, :s, :t, :a)"), params)
        else:
            conn.execute(
                text(f"UPDATE {table} SET spec = :s, updated_at = :t, updated_by = :a WHERE name = :n"),
                params,
            )
        op: Literal["create", "update"] = "create" if row is None else "update"
        audits.append((actor, f"alerts.{kind}.{op}", name, before, stored))
        return ApplyChange(op, kind, name)

    def _delete(self, conn: Connection, kind: SpecKind, name: str, actor: str, audits: list[_Audit]) -> bool:
        table = _TABLES[kind]
        row = conn.execute(text(f"SELECT spec FROM {table} WHERE name = :n"), {"n": name}).first()
        if row is None:
            return False
        conn.execute(text(f"DELETE FROM {table} WHERE name = :n"), {"n": name})
        audits.append((actor, f"alerts.{kind}.delete", name, loads(row[0]), None))
        return True

    def put_rule(self, spec: AlertRuleSpec, actor: str) -> bool:
        """Create or replace a rule; False when it was stored as is already."""
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            done = self._put(conn, "rule", spec, actor, audits) is not None
        self._flush(audits)
        return done

    def delete_rule(self, name: str, actor: str) -> bool:
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            done = self._delete(conn, "rule", name, actor, audits)
        self._flush(audits)
        return done

    def put_channel(self, spec: ChannelSpec, actor: str) -> bool:
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            done = self._put(conn, "channel", spec, actor, audits) is not None
        self._flush(audits)
        return done

    def delete_channel(self, name: str, actor: str) -> bool:
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            done = self._delete(conn, "channel", name, actor, audits)
        self._flush(audits)
        return done

    # -- silences --------------------------------------------------------------------------------

    def silences(self, *, include_expired: bool = False) -> list[Silence]:
        now = self.clock()
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM alert_silences ORDER BY starts_at, id")).mappings().all()
        out = [
            Silence(
                id=r["id"],
                matchers=loads(r["matchers"]),
                starts_at=float(r["starts_at"]),
                ends_at=float(r["ends_at"]),
                comment=r["comment"] or "",
                created_by=r["created_by"],
                created_at=float(r["created_at"]),
            )
            for r in rows
        ]
        return out if include_expired else [s for s in out if s.ends_at > now]

    def active_silences(self, now: float) -> list[Silence]:
        return [s for s in self.silences(include_expired=True) if s.active(now)]

    def _put_silence(
        self, conn: Connection, spec: SilenceSpec, actor: str, audits: list[_Audit]
    ) -> tuple[Silence, ApplyChange | None]:
        now = self.clock()
        starts = spec.starts_at.timestamp() if spec.starts_at is not None else now
        ends = spec.ends_at.timestamp()
        if ends <= starts:
            raise ValueError("ends_at: a silence ends after it starts (and in the future)")
        silence = Silence(spec.id or new_id("sil"), dict(spec.matchers), starts, ends, spec.comment, actor, now)
        row = conn.execute(text("SELECT * FROM alert_silences WHERE id = :i"), {"i": silence.id}).mappings().first()
        params = {
            "i": silence.id,
            "m": dumps(silence.matchers),
            "s": starts,
            "e": ends,
            "c": silence.comment,
            "b": actor,
            "t": now,
        }
        if row is not None:
            if (loads(row["matchers"]), row["starts_at"], row["ends_at"], row["comment"] or "") == (
                silence.matchers,
                starts,
                ends,
                silence.comment,
            ) or (spec.starts_at is None and (loads(row["matchers"]), row["ends_at"]) == (silence.matchers, ends)):
                return silence, None
            conn.execute(
                text(
                    "UPDATE alert_silences SET matchers = :m, starts_at = :s, ends_at = :e, comment = :c,"
                    " created_by = :b, created_at = :t WHERE id = :i"
                ),
                params,
            )
        else:
            conn.execute(text("INSERT INTO alert_silences VALUES (:i, :m, :s, :e, :c, :b, :t)"), params)
        op: Literal["create", "update"] = "create" if row is None else "update"
        audits.append((actor, f"alerts.silence.{op}", silence.id, None, silence.to_dict()))
        return silence, ApplyChange(op, "silence", silence.id)

    def add_silence(self, spec: SilenceSpec, actor: str) -> Silence:
        """Store a silence (``ValueError`` when it ends before it starts)."""
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            silence = self._put_silence(conn, spec, actor, audits)[0]
        self._flush(audits)
        return silence

    def expire_silence(self, silence_id: str, actor: str) -> bool:
        """End a silence now; False when there is none with that id."""
        now = self.clock()
        with self.db.engine.begin() as conn:
            updated = conn.execute(
                text("UPDATE alert_silences SET ends_at = :t WHERE id = :i AND ends_at > :t"),
                {"i": silence_id, "t": now},
            )
            if not updated.rowcount:
                return False
        self._flush([(actor, "alerts.silence.expire", silence_id, None, {"ends_at": now})])
        return True

    # -- apply -------------------------------------------------------------------------------------

    def plan(self, declared: AlertsDeclared, *, prune: bool) -> list[ApplyChange]:
        """What :meth:`apply` would change (rules and channels by name; silences by id), nothing written."""
        changes: list[ApplyChange] = []
        kinds: tuple[tuple[SpecKind, list[Any]], ...] = (("rule", declared.rules), ("channel", declared.channels))
        with self.db.engine.connect() as conn:
            for kind, specs in kinds:
                current = self._specs(kind, conn)
                for spec in specs:
                    stored = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                    existing = current.get(spec.name)
                    if existing is None:
                        changes.append(ApplyChange("create", kind, spec.name))
                    elif existing.model_dump(mode="json", by_alias=True, exclude_defaults=True) != stored:
                        changes.append(ApplyChange("update", kind, spec.name))
                if prune:
                    declared_names = {s.name for s in specs}
                    changes += [ApplyChange("delete", kind, n) for n in current if n not in declared_names]
        known = {s.id for s in self.silences(include_expired=True)}
        for silence in declared.silences:
            if silence.id is None or silence.id not in known:
                changes.append(ApplyChange("create", "silence", silence.id or "(new)"))
        return changes

    def apply(self, declared: AlertsDeclared, *, prune: bool, actor: str) -> list[ApplyChange]:
        """Sync rules, channels and silences to ``declared`` in one transaction; the changes made."""
        changes: list[ApplyChange] = []
        audits: list[_Audit] = []
        with self.db.engine.begin() as conn:
            for channel in declared.channels:
                changes += _some(self._put(conn, "channel", channel, actor, audits))
            for rule in declared.rules:
                changes += _some(self._put(conn, "rule", rule, actor, audits))
            if prune:
                kept: tuple[tuple[SpecKind, set[str]], ...] = (
                    ("rule", {r.name for r in declared.rules}),
                    ("channel", {c.name for c in declared.channels}),
                )
                for kind, names in kept:
                    for name in list(self._specs(kind, conn)):
                        if name not in names and self._delete(conn, kind, name, actor, audits):
                            changes.append(ApplyChange("delete", kind, name))
            for silence in declared.silences:
                changes += _some(self._put_silence(conn, silence, actor, audits)[1])
        self._flush(audits)
        return changes

    def _flush(self, audits: list[_Audit]) -> None:
        # After the commit: the audit log writes in its own transaction (SQLite allows one writer).
        if self.audit is not None:
            for actor, action, target, before, after in audits:
                self.audit.append(actor, action, target, before=before, after=after)


def _some(change: ApplyChange | None) -> Iterable[ApplyChange]:
    return [change] if change is not None else []
