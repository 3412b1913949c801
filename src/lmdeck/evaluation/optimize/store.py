"""Where prompt optimizations are kept: the ``prompt_optimizations`` table (blocking calls).

store = OptimizationStore(db)
store.create(record)
store.update(record.id, progress=OptimizationProgress(done=3, total=8))
store.finish(record.id, "succeeded", result={...})
store.get("opt_…").status                      # "succeeded"
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.protocol.optimization import OptimizationProgress, OptimizationRecord, OptimizationStatus
from lmdeck.registry.sql import dumps, loads, new_id, now

_COLUMNS = (
    "id, prompt, from_version, dataset, status, request, progress, result, error, created_at, finished_at, created_by"
)


def new_optimization_id() -> str:
    return "opt_" + new_id()[:20]


def _record(row: Any) -> OptimizationRecord:
    return OptimizationRecord(
        id=row.id,
        prompt=row.prompt,
        from_version=row.from_version,
        dataset=row.dataset,
        status=row.status,
        request=loads(row.request),
        progress=OptimizationProgress.model_validate(loads(row.progress)),
        result=loads(row.result) if row.result is not None else None,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        created_by=row.created_by,
    )


class OptimizationStore:
    """Optimization records, one row each; progress is rewritten as the search goes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, record: OptimizationRecord) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO prompt_optimizations ({_COLUMNS}) VALUES (:id, :prompt, :from_version, :dataset, "
                    ":status, :request, :progress, :result, :error, :created_at, :finished_at, :created_by)"
                ),
                {
                    **record.model_dump(exclude={"request", "progress", "result"}),
                    "request": dumps(record.request),
                    "progress": dumps(record.progress.model_dump()),
                    "result": dumps(record.result) if record.result is not None else None,
                },
            )

    def update(self, record_id: str, progress: OptimizationProgress) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE prompt_optimizations SET progress = :p WHERE id = :id"),
                {"p": dumps(progress.model_dump()), "id": record_id},
            )

    def finish(
        self,
        record_id: str,
        status: OptimizationStatus,
        progress: OptimizationProgress,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE prompt_optimizations SET status = :s, progress = :p, result = :r, error = :e, "
                    "finished_at = :t WHERE id = :id"
                ),
                {
                    "s": status,
                    "p": dumps(progress.model_dump()),
                    "r": dumps(result) if result is not None else None,
                    "e": error,
                    "t": now(),
                    "id": record_id,
                },
            )

    def get(self, record_id: str) -> OptimizationRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_COLUMNS} FROM prompt_optimizations WHERE id = :id"), {"id": record_id}
            ).first()
        return _record(row) if row else None

    def of_prompt(self, prompt: str, limit: int = 50) -> list[OptimizationRecord]:
        """A prompt's optimizations, newest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM prompt_optimizations WHERE prompt = :p "
                    "ORDER BY created_at DESC, id DESC LIMIT :limit"
                ),
                {"p": prompt, "limit": limit},
            ).all()
        return [_record(r) for r in rows]

    def fail_unfinished(self, reason: str) -> int:
        """Mark optimizations left running by a previous process as failed; how many there were."""
        with self.db.engine.begin() as conn:
            result = conn.execute(
                text(
                    "UPDATE prompt_optimizations SET status = 'failed', error = :e, finished_at = :t "
                    "WHERE status = 'running'"
                ),
                {"e": reason, "t": now()},
            )
        return int(result.rowcount or 0)
