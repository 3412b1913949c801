"""Stored responses: written behind the request by a thread, read and deleted off the event loop.

    store = ResponseStore(db, retention_s=30 * 86400)
    await store.start()
    store.put(stored)                          # queued at once; never blocks the request
    await store.get("resp_…", team_id="t1")    # None when absent, expired, or another team's
    await store.get("resp_…", team_id=None, key_id="k1")  # a key without a team reads only its own
    await store.delete("resp_…", team_id="t1") # True when it was there
    await store.stop()                         # stores what is queued

A response queued and not yet written is read from the queue, so a request naming it in
``previous_response_id`` right after it finished finds it. The thread also purges expired rows every
``purge_interval_s``. A full queue (``max_pending``) drops the new response with a warning: the answer
was already sent, and a later ``previous_response_id`` naming it gets a 404.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select

from lmdeck.db import Database
from lmdeck.protocol.responses import StoredResponse

log = logging.getLogger(__name__)

responses_table = Table(
    "gateway_responses",
    MetaData(),
    Column("id", String(80), primary_key=True),
    Column("team_id", String(64)),
    Column("key_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("body", Text, nullable=False),
)


class ResponseStore:
    """Stored responses by id, scoped to the owning team (see the module docs)."""

    def __init__(
        self, db: Database, *, retention_s: float, purge_interval_s: float = 3600.0, max_pending: int = 10_000
    ) -> None:
        self.db = db
        self.retention_s = retention_s
        self.purge_interval_s = purge_interval_s
        self.max_pending = max_pending
        self._pending: dict[str, StoredResponse] = {}
        #: Ids of the batch the thread is writing, and those of them deleted meanwhile (deleted again
        #: once the write is in, so a delete answered 200 is never undone by a late insert).
        self._writing: set[str] = set()
        self._deleted: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_purge = time.monotonic() + purge_interval_s
        #: Responses written, and those dropped because the queue was full or the write failed.
        self.written = 0
        self.dropped = 0

    def put(self, stored: StoredResponse) -> None:
        """Queue ``stored`` for the database; returns at once."""
        with self._cond:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                log.warning("stored responses queue is full (%d): response %s not stored", self.max_pending, stored.id)
                return
            self._pending[stored.id] = stored
            self._cond.notify()
        if self._thread is None:
            self.open()

    def expiry(self, created_at: float) -> float:
        return created_at + self.retention_s

    async def get(self, response_id: str, *, team_id: str | None, key_id: str | None = None) -> StoredResponse | None:
        """The response ``response_id`` of ``team_id``'s keys (of the key ``key_id`` itself when
        ``team_id`` is None), or None: absent, expired, another team's or key's."""
        with self._cond:
            if response_id in self._deleted:
                return None
            stored = self._pending.get(response_id)
        if stored is None:
            stored = await asyncio.to_thread(self._read, response_id)
        if stored is None or stored.team_id != team_id or stored.expires_at <= time.time():
            return None
        if team_id is None and stored.key_id != key_id:
            return None
        return stored

    async def delete(self, response_id: str, *, team_id: str | None, key_id: str | None = None) -> bool:
        """Delete the response ``response_id`` :meth:`get` would return; False when there is none."""
        if await self.get(response_id, team_id=team_id, key_id=key_id) is None:
            return False
        with self._cond:
            self._pending.pop(response_id, None)
            if response_id in self._writing:
                self._deleted.add(response_id)
        await asyncio.to_thread(self._delete, response_id)
        return True

    def _read(self, response_id: str) -> StoredResponse | None:
        with self.db.engine.connect() as conn:
            body = conn.execute(select(responses_table.c.body).where(responses_table.c.id == response_id)).scalar()
        return StoredResponse.model_validate_json(body) if body is not None else None

    def _delete(self, response_id: str) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(delete(responses_table).where(responses_table.c.id == response_id))

    def purge(self, now: float | None = None) -> int:
        """Delete every expired response (blocking); the number deleted."""
        with self.db.engine.begin() as conn:
            result = conn.execute(delete(responses_table).where(responses_table.c.expires_at <= (now or time.time())))
        return int(result.rowcount or 0)

    def _write(self, batch: list[StoredResponse]) -> None:
        rows = [
            {
                "id": s.id,
                "team_id": s.team_id,
                "key_id": s.key_id,
                "created_at": s.created_at,
                "expires_at": s.expires_at,
                "body": s.model_dump_json(),
            }
            for s in batch
        ]
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(responses_table), rows)
            self.written += len(rows)
        except Exception:
            self.dropped += len(rows)
            log.exception("storing %d responses failed", len(rows))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping and time.monotonic() < self._next_purge:
                    self._cond.wait(max(0.0, self._next_purge - time.monotonic()))
                batch = list(self._pending.values())
                self._writing = {stored.id for stored in batch}
                stopping = self._stopping
            if batch:
                self._write(batch)
                with self._cond:
                    for stored in batch:
                        if self._pending.get(stored.id) is stored:
                            del self._pending[stored.id]
                    gone, self._deleted, self._writing = self._deleted, set(), set()
                for response_id in gone:
                    try:
                        self._delete(response_id)
                    except Exception:
                        log.exception("deleting stored response %s after its write failed", response_id)
                with self._cond:
                    self._cond.notify_all()
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self.purge_interval_s
                try:
                    purged = self.purge()
                    if purged:
                        log.info("purged %d expired stored responses", purged)
                except Exception:
                    log.exception("purging expired stored responses failed")
            if stopping and not batch:
                return

    def open(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="lmdeck-response-store", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued response is written; False if ``timeout`` passes first."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    async def start(self) -> None:
        await asyncio.to_thread(self.open)

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)
