"""The ``eval_runs`` and ``eval_results`` tables (blocking: call off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.evaluation import RowResult
from lmdeck.registry.owners import OwnerColumns, owner_of_row
from lmdeck.registry.sql import dumps, loads, new_id, now

_RUN_COLUMNS = (
    "id, name, status, spec, dataset, dataset_version, dataset_digest, prompt, prompt_version, route, model, "
    "row_count, completed, summary, error, created_at, finished_at, created_by, team_id, visibility"
)
_RESULT_COLUMNS = (
    "run_id, idx, input, expected, output, scores, latency_ms, input_tokens, output_tokens, cost, trace_id, error"
)


@dataclass
class RunRecord:
    """One eval run as stored; ``summary`` is filled when it finishes."""

    id: str
    spec: dict[str, Any]
    dataset: str
    dataset_version: int
    dataset_digest: str
    row_count: int
    name: str | None = None
    status: str = "running"
    prompt: str | None = None
    prompt_version: int | None = None
    route: str | None = None
    model: str | None = None
    completed: int = 0
    summary: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = field(default_factory=now)
    finished_at: float | None = None
    created_by: str | None = None
    team_id: str | None = None
    visibility: Visibility = "team"

    @property
    def owner(self) -> Owner:
        return Owner(self.team_id, self.visibility)

    @classmethod
    def new(cls, **fields: Any) -> RunRecord:
        return cls(id="run_" + new_id()[:20], **fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "dataset": f"{self.dataset}@{self.dataset_version}",
            "dataset_digest": self.dataset_digest,
            "prompt": f"{self.prompt}@{self.prompt_version}" if self.prompt else None,
            "route": self.route,
            "model": self.model,
            "evaluators": self.spec.get("evaluators", []),
            "row_count": self.row_count,
            "completed": self.completed,
            "summary": self.summary,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "created_by": self.created_by,
            "team_id": self.team_id,
            "visibility": self.visibility,
        }


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row[0],
        name=row[1],
        status=row[2],
        spec=loads(row[3]),
        dataset=row[4],
        dataset_version=int(row[5]),
        dataset_digest=row[6],
        prompt=row[7],
        prompt_version=row[8],
        route=row[9],
        model=row[10],
        row_count=int(row[11]),
        completed=int(row[12]),
        summary=loads(row[13]),
        error=row[14],
        created_at=float(row[15]),
        finished_at=float(row[16]) if row[16] is not None else None,
        created_by=row[17],
        team_id=row[18],
        visibility=owner_of_row(row[18], row[19]).visibility,
    )


def _result(row: Any) -> RowResult:
    return RowResult(
        idx=int(row[1]),
        input=loads(row[2]),
        expected=loads(row[3]),
        output=row[4],
        scores=loads(row[5]),
        latency_ms=row[6],
        input_tokens=int(row[7] or 0),
        output_tokens=int(row[8] or 0),
        cost=float(row[9] or 0.0),
        trace_id=row[10],
        error=row[11],
    )


class RunStore:
    """Eval runs and their per-row results.

    >>> store = RunStore(db)  # doctest: +SKIP
    >>> store.create(RunRecord.new(spec={}, dataset="arith", dataset_version=1, dataset_digest="ab", row_count=3))
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, run: RunRecord) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO eval_runs ({_RUN_COLUMNS}) VALUES (:id, :name, :status, :spec, :dataset, :dv, "
                    ":digest, :prompt, :pv, :route, :model, :rows, :completed, :summary, :error, :created_at, "
                    ":finished_at, :created_by, :team_id, :visibility)"
                ),
                {
                    "id": run.id,
                    "name": run.name,
                    "status": run.status,
                    "spec": dumps(run.spec),
                    "dataset": run.dataset,
                    "dv": run.dataset_version,
                    "digest": run.dataset_digest,
                    "prompt": run.prompt,
                    "pv": run.prompt_version,
                    "route": run.route,
                    "model": run.model,
                    "rows": run.row_count,
                    "completed": run.completed,
                    "summary": dumps(run.summary) if run.summary is not None else None,
                    "error": run.error,
                    "created_at": run.created_at,
                    "finished_at": run.finished_at,
                    "created_by": run.created_by,
                    "team_id": run.team_id,
                    "visibility": run.visibility,
                },
            )

    def add_results(self, run_id: str, results: Sequence[RowResult], completed: int) -> None:
        if not results:
            return
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO eval_results ({_RESULT_COLUMNS}) VALUES (:run_id, :idx, :input, :expected, "
                    ":output, :scores, :latency_ms, :input_tokens, :output_tokens, :cost, :trace_id, :error)"
                ),
                [
                    {
                        "run_id": run_id,
                        "idx": r.idx,
                        "input": dumps(r.input),
                        "expected": dumps(r.expected),
                        "output": r.output,
                        "scores": dumps(r.scores),
                        "latency_ms": r.latency_ms,
                        "input_tokens": r.input_tokens,
                        "output_tokens": r.output_tokens,
                        "cost": r.cost,
                        "trace_id": r.trace_id,
                        "error": r.error,
                    }
                    for r in results
                ],
            )
            conn.execute(text("UPDATE eval_runs SET completed = :c WHERE id = :id"), {"c": completed, "id": run_id})

    def finish(self, run_id: str, status: str, summary: dict[str, Any] | None, error: str | None = None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE eval_runs SET status = :s, summary = :summary, error = :error, finished_at = :t "
                    "WHERE id = :id"
                ),
                {
                    "s": status,
                    "summary": dumps(summary) if summary is not None else None,
                    "error": error,
                    "t": now(),
                    "id": run_id,
                },
            )

    def get(self, run_id: str) -> RunRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_RUN_COLUMNS} FROM eval_runs WHERE id = :id"), {"id": run_id}).first()
        return _run(row) if row else None

    def recent(self, *, where: str = "1 = 1", params: dict[str, Any] | None = None, limit: int = 50) -> list[RunRecord]:
        """The newest runs matching the SQL condition ``where`` (all by default)."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_RUN_COLUMNS} FROM eval_runs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT :limit"
                ),
                {**(params or {}), "limit": limit},
            ).all()
        return [_run(r) for r in rows]

    def set_owner(self, run_id: str, owner: Owner) -> None:
        OwnerColumns("eval_runs", "id").set_in(self.db, run_id, owner)

    def results(self, run_id: str) -> list[RowResult]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_RESULT_COLUMNS} FROM eval_results WHERE run_id = :id ORDER BY idx"), {"id": run_id}
            ).all()
        return [_result(r) for r in rows]

    def fail_unfinished(self, reason: str) -> int:
        """Mark runs left running by a previous process as failed; how many there were."""
        with self.db.engine.begin() as conn:
            result = conn.execute(
                text("UPDATE eval_runs SET status = 'failed', error = :e, finished_at = :t WHERE status = 'running'"),
                {"e": reason, "t": now()},
            )
        return int(result.rowcount or 0)
