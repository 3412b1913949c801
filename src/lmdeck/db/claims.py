"""Work claims: which process runs a piece of long-running work (a batch, a fine-tuning job) now.

Several processes share one store (replicas, ``lmdeck serve --workers``). Each claims the work it
runs, keeps its claims alive, and gives them up when the work ends or it stops; work whose claim is
absent or expired (its process died) is adopted by the next process to claim it::

    claims = WorkClaims(db, ttl_s=30.0)          # owner: a random id for this process
    claims.claim("batch", "batch-1")             # True: ours until expires_at (now + 30 s)
    other.claim("batch", "batch-1")              # False while our claim lives
    claims.renew("batch", ["batch-1"])           # set(): every claim still ours, 30 s more
    claims.release("batch", "batch-1")           # gone: the next claim of anyone wins

A claim is one statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the row is ours or
expired), atomic on SQLite and PostgreSQL alike: of two processes claiming at once, exactly one
wins. Every method is blocking I/O: call it off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import text

from lmdeck.db.database import Database

T = TypeVar("T")

_CLAIM = text(
    """INSERT INTO lmdeck_work_claims (kind, id, owner, expires_at) VALUES (:kind, :id, :owner, :expires)
    ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE lmdeck_work_claims.owner = excluded.owner OR lmdeck_work_claims.expires_at < :now"""
)
_RENEW = text("UPDATE lmdeck_work_claims SET expires_at = :expires WHERE kind = :kind AND id = :id AND owner = :owner")
_RELEASE = text("DELETE FROM lmdeck_work_claims WHERE kind = :kind AND id = :id AND owner = :owner")
_HOLDER = text("SELECT owner, expires_at FROM lmdeck_work_claims WHERE kind = :kind AND id = :id")


def instance_id() -> str:
    """A new random owner id (16 hex digits): one per process."""
    return secrets.token_hex(8)


class WorkClaims:
    """Claims of one process (``owner``) on ``db``, each held ``ttl_s`` seconds past its last renewal.

    ``clock``: epoch seconds (tests pass their own). Claims of another owner are never changed,
    except an expired one, which a claim takes over.
    """

    def __init__(
        self, db: Database, *, ttl_s: float = 30.0, owner: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"a work claim's ttl_s must be positive seconds, not {ttl_s!r}")
        self.db = db
        self.ttl_s = ttl_s
        self.owner = owner or instance_id()
        self.clock = clock

    def claim(self, kind: str, work_id: str) -> bool:
        """Claim ``work_id`` of ``kind`` for ``ttl_s`` seconds: True when it was unclaimed, expired or
        already ours (then renewed); False while another owner's claim lives."""
        now = self.clock()
        params = {"kind": kind, "id": work_id, "owner": self.owner, "expires": now + self.ttl_s, "now": now}
        with self.db.engine.begin() as conn:
            return conn.execute(_CLAIM, params).rowcount == 1

    def renew(self, kind: str, work_ids: Iterable[str]) -> set[str]:
        """Push the expiry of our claims on ``work_ids`` to ``ttl_s`` from now; the ids no longer ours
        (expired and claimed by another owner, or released), which this process must stop running."""
        expires = self.clock() + self.ttl_s
        lost: set[str] = set()
        with self.db.engine.begin() as conn:
            for work_id in work_ids:
                params = {"kind": kind, "id": work_id, "owner": self.owner, "expires": expires}
                if conn.execute(_RENEW, params).rowcount != 1:
                    lost.add(work_id)
        return lost

    def release(self, kind: str, work_id: str) -> None:
        """Give up our claim on ``work_id`` (nothing when it is not ours)."""
        with self.db.engine.begin() as conn:
            conn.execute(_RELEASE, {"kind": kind, "id": work_id, "owner": self.owner})

    def adopt(self, kind: str, work_id: str, read: Callable[[str], T | None], final: Callable[[T], bool]) -> T | None:
        """Claim unfinished work and read it back: ``read(work_id)``, or None when a live process holds it
        or it is gone or ``final`` (read after the claim: its last runner may have finished it just
        before, in which case the claim is released again). Blocking: call it off the event loop."""
        if not self.claim(kind, work_id):
            return None
        work = read(work_id)
        if work is None or final(work):
            self.release(kind, work_id)
            return None
        return work

    def holder(self, kind: str, work_id: str) -> str | None:
        """The owner whose claim on ``work_id`` lives now, or None (unclaimed or expired)."""
        with self.db.engine.connect() as conn:
            row = conn.execute(_HOLDER, {"kind": kind, "id": work_id}).first()
        if row is None or float(row[1]) < self.clock():
            return None
        return str(row[0])
