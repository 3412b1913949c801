"""Fine-tuning jobs, their events and checkpoints, in the database (blocking: call off the event loop).

    store = JobStore(db)
    store.create(record)                                   # a new job
    store.get("ftjob-…")                                   # JobRecord | None
    store.save(record)                                     # its object, status and runner state
    store.add_event("ftjob-…", "Step 10/60: training loss=0.91", type="metrics", data={...})
    store.events("ftjob-…", limit=20)                      # newest first, as OpenAI lists them
    store.unfinished()                                     # jobs a restarted gateway resumes

A job is seen by its key's team (a key without a team: by that key alone) and by admins; the
queries take the caller's ``team_id``/``key_id`` or ``everyone=True``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.gateway.batches.ownership import owner_clause, owns
from lmdeck.protocol.fine_tuning import (
    FINAL_STATUSES,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCreate,
    FineTuningJobEvent,
)

_meta = MetaData()
jobs_table = Table(
    "finetune_jobs",
    _meta,
    Column("id", String(64), primary_key=True),
    Column("team_id", String(128)),
    Column("key_id", String(128)),
    Column("status", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("runner_state", Text),
)
events_table = Table(
    "finetune_job_events",
    _meta,
    Column("id", String(64), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("level", String(8), nullable=False),
    Column("type", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", Text),
)
checkpoints_table = Table(
    "finetune_job_checkpoints",
    _meta,
    Column("id", String(64), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("step", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(12).hex()}"


@dataclass
class RunnerState:
    """What the service needs to find a job's training again after a restart: the runner's handle
    (a pid or a Ray submission id), the job directory and how far ``progress.jsonl`` was read."""

    handle: str | None = None
    job_dir: str | None = None
    progress_offset: int = 0
    eval_runs: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(
            {
                "handle": self.handle,
                "job_dir": self.job_dir,
                "progress_offset": self.progress_offset,
                "eval_runs": self.eval_runs,
            }
        )

    @classmethod
    def loads(cls, text: str | None) -> RunnerState:
        data = json.loads(text) if text else {}
        return cls(
            data.get("handle"), data.get("job_dir"), int(data.get("progress_offset", 0)), data.get("eval_runs", {})
        )


@dataclass
class JobRecord:
    """A job's object, the request that made it, who owns it and its runner state."""

    job: FineTuningJob
    request: FineTuningJobCreate
    key_id: str | None
    runner: RunnerState = field(default_factory=RunnerState)

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def team_id(self) -> str | None:
        return self.job.team_id

    @property
    def final(self) -> bool:
        return self.job.status in FINAL_STATUSES

    def visible_to(self, team_id: str | None, key_id: str | None, everyone: bool = False) -> bool:
        return everyone or owns(self.team_id, self.key_id, team_id, key_id)


def _record(row: Any) -> JobRecord:
    return JobRecord(
        FineTuningJob.model_validate_json(row.body),
        FineTuningJobCreate.model_validate_json(row.request),
        row.key_id,
        RunnerState.loads(row.runner_state),
    )


class JobStore:
    """The ``finetune_*`` tables (see the module docs)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._event_lock = threading.Lock()

    def create(self, record: JobRecord) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(jobs_table).values(
                    id=record.id,
                    team_id=record.team_id,
                    key_id=record.key_id,
                    status=record.job.status,
                    created_at=float(record.job.created_at),
                    body=record.job.model_dump_json(),
                    request=record.request.model_dump_json(),
                    runner_state=record.runner.dumps(),
                )
            )

    def save(self, record: JobRecord, *, reopen: bool = False) -> bool:
        """Write ``record``; whether it was written. A job that is already final is not taken back to a
        running state by a writer that read it earlier (the progress follower racing a cancel): only a
        ``reopen`` (a resume) may do that."""
        statement = update(jobs_table).where(jobs_table.c.id == record.id)
        if not reopen and not record.final:
            statement = statement.where(jobs_table.c.status.not_in(sorted(FINAL_STATUSES)))
        with self.db.engine.begin() as conn:
            result = conn.execute(
                statement.values(
                    status=record.job.status, body=record.job.model_dump_json(), runner_state=record.runner.dumps()
                )
            )
        return bool(result.rowcount)

    def get(self, job_id: str) -> JobRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).first()
        return _record(row) if row is not None else None

    def owner_of_job(self, job_id: str) -> tuple[str | None, str | None] | None:
        """(team id, key id) of the job's creator, or None when there is no job ``job_id``."""
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(jobs_table.c.team_id, jobs_table.c.key_id).where(jobs_table.c.id == job_id)
            ).first()
        return (row.team_id, row.key_id) if row is not None else None

    def listing(
        self, *, team_id: str | None, key_id: str | None, everyone: bool, limit: int, after: str | None = None
    ) -> tuple[list[JobRecord], bool]:
        """Jobs the caller sees, newest first, ``limit`` of them after the job ``after``; and whether more follow."""
        query = select(jobs_table)
        if not everyone:
            query = query.where(owner_clause(jobs_table, team_id, key_id))
        with self.db.engine.connect() as conn:
            if after is not None:
                cursor = conn.execute(select(jobs_table.c.created_at).where(jobs_table.c.id == after)).first()
                if cursor is not None:
                    query = query.where(
                        (jobs_table.c.created_at < cursor.created_at)
                        | and_(jobs_table.c.created_at == cursor.created_at, jobs_table.c.id < after)
                    )
            rows = conn.execute(
                query.order_by(jobs_table.c.created_at.desc(), jobs_table.c.id.desc()).limit(limit + 1)
            ).all()
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    def unfinished(self) -> list[JobRecord]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(jobs_table)
                .where(jobs_table.c.status.not_in(sorted(FINAL_STATUSES)))
                .order_by(jobs_table.c.created_at)
            ).all()
        return [_record(r) for r in rows]

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> FineTuningJobEvent:
        """Append an event to the job's log (one writer at a time: ``seq`` orders them)."""
        at = time.time() if at is None else at
        event_id = new_id("ftevent")
        with self._event_lock, self.db.engine.begin() as conn:
            seq = conn.execute(
                select(func.coalesce(func.max(events_table.c.seq), 0)).where(events_table.c.job_id == job_id)
            ).scalar_one()
            conn.execute(
                insert(events_table).values(
                    id=event_id,
                    job_id=job_id,
                    seq=int(seq) + 1,
                    created_at=at,
                    level=level,
                    type=type,
                    message=message,
                    data=json.dumps(data) if data is not None else None,
                )
            )
        return FineTuningJobEvent.model_validate(
            {"id": event_id, "created_at": int(at), "level": level, "message": message, "type": type, "data": data}
        )

    def events(
        self, job_id: str, *, limit: int, after: str | None = None, oldest_first: bool = False
    ) -> tuple[list[FineTuningJobEvent], bool]:
        """The job's events, newest first (``oldest_first``: in the order they happened), ``limit`` of
        them after the event ``after``; and whether more follow."""
        query = select(events_table).where(events_table.c.job_id == job_id)
        with self.db.engine.connect() as conn:
            if after is not None:
                cursor = conn.execute(
                    select(events_table.c.seq).where(events_table.c.id == after, events_table.c.job_id == job_id)
                ).first()
                if cursor is not None:
                    newer = events_table.c.seq > cursor.seq
                    query = query.where(newer if oldest_first else events_table.c.seq < cursor.seq)
            order = events_table.c.seq.asc() if oldest_first else events_table.c.seq.desc()
            rows = conn.execute(query.order_by(order).limit(limit + 1)).all()
        events = [
            FineTuningJobEvent.model_validate(
                {
                    "id": r.id,
                    "created_at": int(r.created_at),
                    "level": r.level,
                    "message": r.message,
                    "type": r.type,
                    "data": json.loads(r.data) if r.data else None,
                }
            )
            for r in rows[:limit]
        ]
        return events, len(rows) > limit

    def add_checkpoint(self, job_id: str, step: int, path: str, metrics: dict[str, float | None], at: float) -> bool:
        """Record a checkpoint; False when the job already has one at ``step`` (a resumed worker's repeat)."""
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(checkpoints_table).values(
                        id=new_id("ftckpt"),
                        job_id=job_id,
                        step=step,
                        path=path,
                        metrics=json.dumps(metrics),
                        created_at=at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def checkpoints(
        self, job_id: str, *, limit: int, after: str | None = None
    ) -> tuple[list[FineTuningJobCheckpoint], bool]:
        """The job's checkpoints, newest step first; and whether more follow."""
        query = select(checkpoints_table).where(checkpoints_table.c.job_id == job_id)
        with self.db.engine.connect() as conn:
            if after is not None:
                cursor = conn.execute(
                    select(checkpoints_table.c.step).where(
                        checkpoints_table.c.id == after, checkpoints_table.c.job_id == job_id
                    )
                ).first()
                if cursor is not None:
                    query = query.where(checkpoints_table.c.step < cursor.step)
            rows = conn.execute(query.order_by(checkpoints_table.c.step.desc()).limit(limit + 1)).all()
        data = [
            FineTuningJobCheckpoint(
                id=r.id,
                created_at=int(r.created_at),
                fine_tuned_model_checkpoint=r.path,
                fine_tuning_job_id=job_id,
                step_number=r.step,
                metrics=json.loads(r.metrics),
            )
            for r in rows[:limit]
        ]
        return data, len(rows) > limit
