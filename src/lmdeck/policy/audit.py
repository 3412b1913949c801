"""The audit log: every admin action, appended with its actor, time, before/after, in a hash chain.

Each entry's hash covers its own content and the previous entry's hash, so an
entry edited in the database no longer matches its hash and a deleted entry
leaves a gap in the sequence or a broken link. ``audit_head`` keeps the newest
sequence number and hash, which catches the deletion of the last entry::

    audit = AuditLog(db)
    audit.append("key:admin", "key.created", "key:k_12ab", after={"role": "viewer"})
    await audit.record("key:admin", "alias.moved", "model:support-bot", before={"v": 1}, after={"v": 2})
    verdict = audit.verify()
    assert verdict.ok, verdict.problem

Appends may come from several threads and processes: the sequence number is
the primary key, so two writers racing for the same number cannot both win;
the loser reads the new head and tries again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError, OperationalError

from lmdeck.db import Database

GENESIS = "0" * 64
_APPEND_ATTEMPTS = 8


def canonical(value: Any) -> str | None:
    """The stored (and hashed) form of a before/after state: sorted-key JSON, or None."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def entry_hash(
    prev_hash: str, seq: int, at: float, actor: str, action: str, target: str, before: str | None, after: str | None
) -> str:
    payload = orjson.dumps([prev_hash, seq, f"{at:.6f}", actor, action, target, before, after])
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One appended admin action."""

    seq: int
    at: float
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return entry_hash(
            self.prev_hash, self.seq, self.at, self.actor, self.action, self.target, self.before, self.after
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": orjson.loads(self.before) if self.before is not None else None,
            "after": orjson.loads(self.after) if self.after is not None else None,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditVerdict:
    """The result of checking the chain: ``first_bad`` names the first entry that fails."""

    ok: bool
    entries: int
    first_bad: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad": self.first_bad, "problem": self.problem}


_COLUMNS = "seq, at, actor, action, target, before_state, after_state, prev_hash, hash"


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        at=float(row[1]),
        actor=str(row[2]),
        action=str(row[3]),
        target=str(row[4]),
        before=row[5],
        after=row[6],
        prev_hash=str(row[7]),
        hash=str(row[8]),
    )


class AuditLog:
    """The append-only, hash-chained record of admin actions, kept in the store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()

    def append(
        self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None, at: float | None = None
    ) -> AuditEntry:
        """Append one entry (blocking: call it off the event loop, or use :meth:`record`)."""
        before_text, after_text = canonical(before), canonical(after)
        with self._lock:
            for attempt in range(_APPEND_ATTEMPTS):
                try:
                    with self.db.engine.begin() as conn:
                        return self._append(conn, actor, action, target, before_text, after_text, at)
                except (IntegrityError, OperationalError):
                    if attempt == _APPEND_ATTEMPTS - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _append(
        self,
        conn: Connection,
        actor: str,
        action: str,
        target: str,
        before: str | None,
        after: str | None,
        at: float | None,
    ) -> AuditEntry:
        last = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
        seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
        when = round(time.time() if at is None else at, 6)
        digest = entry_hash(prev, seq, when, actor, action, target, before, after)
        conn.execute(
            text(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (:seq, :at, :actor, :action, :target, :b, :a, :p, :h)"),
            {"seq": seq, "at": when, "actor": actor, "action": action, "target": target}
            | {"b": before, "a": after, "p": prev, "h": digest},
        )
        updated = conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": seq, "h": digest})
        if updated.rowcount == 0:
            conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :s, :h)"), {"s": seq, "h": digest})
        return AuditEntry(seq, when, actor, action, target, before, after, prev, digest)

    async def record(
        self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None
    ) -> AuditEntry:
        """:meth:`append` from async code, run in a worker thread."""
        return await anyio.to_thread.run_sync(partial(self.append, actor, action, target, before=before, after=after))

    def entries(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        action: str | None = None,
        target: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        where = ["seq > :after"]
        params: dict[str, Any] = {"after": after_seq, "limit": limit}
        for column, value in (("action", action), ("target", target), ("actor", actor)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        sql = f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq LIMIT :limit"
        with self.db.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(text(sql), params)]

    def _all(self, conn: Connection, batch: int = 1000) -> Iterator[AuditEntry]:
        after = 0
        while True:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :n"),
                {"after": after, "n": batch},
            ).all()
            for row in rows:
                yield _entry(row)
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def verify(self) -> AuditVerdict:
        """Walk the whole chain; the first entry that was edited, deleted or relinked fails it."""
        with self.db.engine.connect() as conn:
            count, prev, expected = 0, GENESIS, 1
            for entry in self._all(conn):
                if entry.seq != expected:
                    return AuditVerdict(False, count, expected, f"entry {expected} is missing: it was deleted")
                if entry.prev_hash != prev:
                    return AuditVerdict(
                        False, count, entry.seq, f"entry {entry.seq} does not link to entry {entry.seq - 1}"
                    )
                if entry.expected_hash() != entry.hash:
                    return AuditVerdict(
                        False, count, entry.seq, f"entry {entry.seq} was edited: its content does not match its hash"
                    )
                count, prev, expected = count + 1, entry.hash, expected + 1
            head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
        last = expected - 1
        if head is None:
            if count:
                return AuditVerdict(False, count, 1, "the chain's head record is missing")
            return AuditVerdict(True, 0)
        if int(head[0]) > last:
            return AuditVerdict(False, count, last + 1, f"entry {last + 1} is missing: it was deleted")
        if int(head[0]) != last or str(head[1]) != prev:
            return AuditVerdict(False, count, int(head[0]), "the chain's head does not match its last entry")
        return AuditVerdict(True, count)
