"""ResponseStore: written behind the request, scoped to a team, expired and purged."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from lmdeck.db import Database
from lmdeck.gateway.ingress.responses.store import ResponseStore
from lmdeck.protocol.responses import ResponseObject, StoredResponse


def stored(response_id: str, team_id: str | None, created_at: float, retention_s: float) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        team_id=team_id,
        key_id="k",
        created_at=created_at,
        expires_at=created_at + retention_s,
        response=ResponseObject(id=response_id, created_at=int(created_at), model="m"),
        messages=[{"role": "user", "content": "hi"}],
    )


async def test_written_behind_read_back_by_team_expired_and_purged(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    db.migrate()
    store = ResponseStore(db, retention_s=100.0, purge_interval_s=3600.0)
    now = time.time()
    store.put(stored("resp_a", "t1", now, 100.0))
    store.put(stored("resp_old", "t1", now - 200.0, 100.0))  # already past its retention
    # Readable at once (from the queue, or from the table once written), by its own team only.
    assert (await store.get("resp_a", team_id="t1")) is not None
    assert await store.get("resp_a", team_id="t2") is None
    assert await store.get("resp_a", team_id=None) is None
    store.put(stored("resp_solo", None, now, 100.0))  # a key without a team (key_id "k")
    assert await store.get("resp_solo", team_id=None, key_id="k") is not None
    assert await store.get("resp_solo", team_id=None, key_id="other") is None
    assert store.wait_idle(30.0) and store.written == 3
    fetched = await store.get("resp_a", team_id="t1")
    assert fetched is not None and fetched.messages == [{"role": "user", "content": "hi"}]
    assert await store.get("resp_old", team_id="t1") is None  # expired: gone for readers at once
    assert store.purge() == 1  # and deleted by the purge
    assert not await store.delete("resp_a", team_id="t2")
    assert await store.delete("resp_a", team_id="t1")
    assert await store.get("resp_a", team_id="t1") is None
    await store.stop()
    db.dispose()


async def test_a_delete_while_the_response_is_being_written_is_not_undone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    db.migrate()
    store = ResponseStore(db, retention_s=100.0, purge_interval_s=3600.0)
    writing, proceed = threading.Event(), threading.Event()
    write = store._write

    def held_write(batch: list[StoredResponse]) -> None:
        writing.set()
        assert proceed.wait(30.0)
        write(batch)

    store._write = held_write  # type: ignore[method-assign]
    await store.start()
    store.put(stored("resp_gone", "t1", time.time(), 100.0))
    assert await asyncio.to_thread(writing.wait, 30.0)  # the thread has taken it and not inserted it yet
    assert await store.delete("resp_gone", team_id="t1")
    proceed.set()
    await store.stop()
    assert await store.get("resp_gone", team_id="t1") is None
    assert store._read("resp_gone") is None  # the late insert was deleted again
    db.dispose()
