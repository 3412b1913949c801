"""Two batch runners on one store, as two processes: a batch runs in the process that claims it.

The runners share the database and the files folder (as the workers of ``lmdeck serve --workers``
do); their rows go to :class:`FakeRows`, and the claims' clock is a fake one the tests move, so that
"the other process died" is "its claim expired", with no waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from lmdeck.db import Database
from lmdeck.db.claims import WorkClaims
from lmdeck.gateway.batches.files import FileStore
from lmdeck.gateway.batches.rows import BatchRows, RowResult, output_line
from lmdeck.gateway.batches.runner import CLAIM_KIND, BatchRunner
from lmdeck.gateway.batches.store import BatchJob, BatchStore
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.batches import BatchCreateRequest

PRINCIPAL = Principal(key_id="k1", role="developer", team_id="t1")


class Clock:
    """A fake clock (epoch seconds) that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class FakeRows:
    """A fake of :class:`BatchRows`: each row answers 200 at once, or, while ``gate`` is given and not
    set, waits for it. Counts each row it answered."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.sent: Counter[str] = Counter()

    async def admit(
        self, job: BatchJob, *, custom_id: str, url: str, body: dict[str, Any], deadline: float
    ) -> RowResult:
        if self.gate is not None:
            await self.gate.wait()
        self.sent[custom_id] += 1
        return output_line(custom_id, 200, "r", {"ok": True})


class Process:
    """One runner with its own claims (owner ``name``) on the shared store and files."""

    def __init__(self, db: Database, root: Path, clock: Clock, name: str, gate: asyncio.Event | None = None) -> None:
        self.rows = FakeRows(gate)
        self.files = FileStore(db, root, max_bytes=2**20)
        self.claims = WorkClaims(db, ttl_s=30.0, owner=name, clock=clock)
        self.runner = BatchRunner(BatchStore(db), self.files, cast(BatchRows, self.rows), self.claims, concurrency=2)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/store.db")
    await asyncio.to_thread(database.migrate)
    yield database
    database.dispose()


async def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


async def new_batch(proc: Process, n: int = 6) -> str:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "chat"}}
        for i in range(n)
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines)
    meta = await proc.files.create(PRINCIPAL, "batch", "rows.jsonl", data)
    request = BatchCreateRequest(input_file_id=meta.id, endpoint="/v1/chat/completions", completion_window="24h")
    return (await proc.runner.create(PRINCIPAL, request)).id


def status(proc: Process, batch_id: str) -> str:
    job = proc.runner.store.read(batch_id)
    assert job is not None
    return job.batch.status


def output_ids(root: Path, batch_id: str) -> Counter[str]:
    path = root / "batches" / batch_id / "output.jsonl"
    return Counter(orjson.loads(line)["custom_id"] for line in path.read_bytes().splitlines())


async def test_a_batch_a_live_process_runs_is_not_adopted_by_another(db: Database, tmp_path: Path) -> None:
    clock, gate = Clock(), asyncio.Event()
    a = Process(db, tmp_path / "files", clock, "a", gate)
    b = Process(db, tmp_path / "files", clock, "b")
    batch_id = await new_batch(a)
    await b.runner.start()  # adopts what no live process claims
    clock.now += 20
    await a.runner._tend()  # a renews
    clock.now += 20  # past the first claim's expiry, not past the renewal's
    await b.runner._tend()
    assert b.runner.live(batch_id) is None and b.claims.holder(CLAIM_KIND, batch_id) == "a"
    gate.set()
    await eventually(lambda: status(a, batch_id) == "completed")
    assert sum(b.rows.sent.values()) == 0 and set(a.rows.sent.values()) == {1}
    await eventually(lambda: a.claims.holder(CLAIM_KIND, batch_id) is None)  # released when it ended
    await a.runner.stop()
    await b.runner.stop()


async def test_a_dead_process_batch_is_adopted_once_its_claim_expires(db: Database, tmp_path: Path) -> None:
    clock, gate = Clock(), asyncio.Event()
    a = Process(db, tmp_path / "files", clock, "a", gate)  # its rows wait: it "dies" with them in flight
    b = Process(db, tmp_path / "files", clock, "b")
    batch_id = await new_batch(a, n=6)
    await eventually(lambda: status(a, batch_id) == "in_progress")
    clock.now += 31  # a renewed nothing: its claim expired
    await b.runner.start()
    await eventually(lambda: status(b, batch_id) == "completed")
    assert b.rows.sent == Counter({f"r{i}": 1 for i in range(6)})
    assert output_ids(tmp_path / "files", batch_id) == b.rows.sent
    # a learns at its next renewal that the batch is no longer its own: it stops, its waiting rows unrun.
    await a.runner._tend()
    await eventually(lambda: a.runner.live(batch_id) is None)
    assert sum(a.rows.sent.values()) == 0 and status(a, batch_id) == "completed"
    await a.runner.stop()
    await b.runner.stop()


async def test_a_stopped_process_releases_its_batches_for_the_next_at_once(db: Database, tmp_path: Path) -> None:
    clock, gate = Clock(), asyncio.Event()
    a = Process(db, tmp_path / "files", clock, "a", gate)
    b = Process(db, tmp_path / "files", clock, "b")
    batch_id = await new_batch(a)
    await eventually(lambda: status(a, batch_id) == "in_progress")
    await a.runner.stop()  # rows waiting for admission are dropped unrun
    assert a.claims.holder(CLAIM_KIND, batch_id) is None
    await b.runner.start()  # no clock move: the claim was released, not expired
    await eventually(lambda: status(b, batch_id) == "completed")
    assert b.rows.sent == Counter({f"r{i}": 1 for i in range(6)}) and sum(a.rows.sent.values()) == 0
    await b.runner.stop()


async def test_a_cancel_sent_to_another_process_reaches_the_one_running_the_batch(db: Database, tmp_path: Path) -> None:
    clock, gate = Clock(), asyncio.Event()
    a = Process(db, tmp_path / "files", clock, "a", gate)
    b = Process(db, tmp_path / "files", clock, "b")
    batch_id = await new_batch(a)
    await eventually(lambda: status(a, batch_id) == "in_progress")
    job = await b.runner.store.get(batch_id, team_id="t1")
    assert job is not None
    assert (await b.runner.cancel(job)).status == "cancelling"
    assert b.runner.live(batch_id) is None  # a runs it: b only stored the cancel
    await a.runner._save(a.runner.live(batch_id) or job)  # a's own save does not undo the cancel
    assert status(a, batch_id) == "cancelling"
    await a.runner._tend()
    await eventually(lambda: status(a, batch_id) == "cancelled")
    assert sum(a.rows.sent.values()) == 0 and sum(b.rows.sent.values()) == 0
    await a.runner.stop()
