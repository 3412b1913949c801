"""Batch objects and each batch's done-set, in the database.

    store = BatchStore(db)
    await store.create(job)                         # a new batch (status ``validating``)
    await store.get("batch_…", team_id="t1")        # BatchJob, or None for another team's
    store.save(job)                                 # its status and object (blocking: off the loop)
    store.mark_done("batch_…", [(7, True)])         # lines whose result is in the output/error file
    store.done("batch_…")                           # {line: ok}
    store.unfinished()                              # batches a process may adopt (see the runner)
    store.statuses(["batch_…"])                     # {id: status}, as stored now

Reads and writes from the event loop go through ``asyncio.to_thread``; the runner calls the
blocking methods from its own threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lmdeck.db import Database
from lmdeck.gateway.batches.ownership import owner_clause, owns
from lmdeck.protocol import APIError
from lmdeck.protocol.batches import FINAL_STATUSES, BatchObject

_meta = MetaData()
batches_table = Table(
    "gateway_batches",
    _meta,
    Column("id", String(80), primary_key=True),
    Column("team_id", String(64)),
    Column("key_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
)
batch_rows_table = Table(
    "gateway_batch_rows",
    _meta,
    Column("batch_id", String(80), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("ok", Boolean, nullable=False),
)


@dataclass
class BatchJob:
    """A batch and who owns it: its rows run as the key ``key_id`` of team ``team_id``."""

    batch: BatchObject
    team_id: str | None
    key_id: str


class BatchStore:
    """Batches by id, scoped to the owning team (see the module docs)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, job: BatchJob) -> None:
        await asyncio.to_thread(self._insert, job)

    def _insert(self, job: BatchJob) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(batches_table).values(
                    id=job.batch.id,
                    team_id=job.team_id,
                    key_id=job.key_id,
                    status=job.batch.status,
                    created_at=float(job.batch.created_at),
                    body=job.batch.model_dump_json(),
                )
            )

    def save(self, job: BatchJob) -> None:
        """Write the batch's status and object (blocking).

        A ``cancelling`` written by another process (a cancel sent to another replica) is not
        overwritten by a status before it (``in_progress``, ``finalizing``): the process running the
        batch sees the cancel at its next claim renewal and saves ``cancelling``, then ``cancelled``.
        """
        status = job.batch.status
        query = update(batches_table).where(batches_table.c.id == job.batch.id)
        if status not in FINAL_STATUSES and status != "cancelling":
            query = query.where(batches_table.c.status != "cancelling")
        with self.db.engine.begin() as conn:
            conn.execute(query.values(status=status, body=job.batch.model_dump_json()))

    async def get(self, batch_id: str, *, team_id: str | None, key_id: str | None = None) -> BatchJob | None:
        job = await asyncio.to_thread(self.read, batch_id)
        return job if job is not None and owns(job.team_id, job.key_id, team_id, key_id) else None

    def read(self, batch_id: str) -> BatchJob | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(batches_table).where(batches_table.c.id == batch_id)).first()
        return _job(row._mapping) if row is not None else None

    async def listing(
        self, *, team_id: str | None, key_id: str | None = None, limit: int = 20, after: str | None = None
    ) -> tuple[list[BatchJob], bool]:
        """The team's batches, newest first, from the one after ``after`` (a batch id); and whether more
        follow. Raises a 400 naming ``after`` when it is not a batch of the team."""
        return await asyncio.to_thread(self._list, team_id, key_id, limit, after)

    def _list(
        self, team_id: str | None, key_id: str | None, limit: int, after: str | None
    ) -> tuple[list[BatchJob], bool]:
        owner = owner_clause(batches_table, team_id, key_id)
        query = select(batches_table).where(owner)
        with self.db.engine.connect() as conn:
            if after is not None:
                row = conn.execute(select(batches_table.c.created_at).where(owner, batches_table.c.id == after)).first()
                if row is None:
                    raise APIError(400, f"after: no batch {after!r} of this key's team to list after", param="after")
                query = query.where(batches_table.c.created_at < row[0])
            query = query.order_by(batches_table.c.created_at.desc(), batches_table.c.id).limit(limit + 1)
            found = [_job(r._mapping) for r in conn.execute(query)]
        return found[:limit], len(found) > limit

    def unfinished(self) -> list[BatchJob]:
        """Every batch not yet in a final status, oldest first, whoever runs it (blocking)."""
        query = (
            select(batches_table)
            .where(batches_table.c.status.not_in(sorted(FINAL_STATUSES)))
            .order_by(batches_table.c.created_at)
        )
        with self.db.engine.connect() as conn:
            return [_job(r._mapping) for r in conn.execute(query)]

    def statuses(self, batch_ids: Iterable[str]) -> dict[str, str]:
        """The stored status of each of ``batch_ids`` that exists (blocking)."""
        ids = sorted(set(batch_ids))
        if not ids:
            return {}
        query = select(batches_table.c.id, batches_table.c.status).where(batches_table.c.id.in_(ids))
        with self.db.engine.connect() as conn:
            return {str(i): str(status) for i, status in conn.execute(query)}

    def mark_done(self, batch_id: str, lines: Iterable[tuple[int, bool]]) -> None:
        """Add ``lines`` (line number, ok) to the done-set; a line already there is kept as it was (a
        row two processes ran, one of them after losing its claim)."""
        rows = [{"batch_id": batch_id, "line": line, "ok": ok} for line, ok in lines]
        if rows:
            dialect = sqlite if self.db.is_sqlite else postgresql
            with self.db.engine.begin() as conn:
                conn.execute(dialect.insert(batch_rows_table).on_conflict_do_nothing(), rows)

    def done(self, batch_id: str) -> dict[int, bool]:
        query = select(batch_rows_table.c.line, batch_rows_table.c.ok).where(batch_rows_table.c.batch_id == batch_id)
        with self.db.engine.connect() as conn:
            return {int(line): bool(ok) for line, ok in conn.execute(query)}


def _job(row: object) -> BatchJob:
    mapping = dict(row)  # type: ignore[call-overload]
    return BatchJob(BatchObject.model_validate_json(mapping["body"]), mapping["team_id"], mapping["key_id"])
