"""Flywheel runs as stored (blocking: call off the event loop).

store = FlywheelStore(db)
run = store.create(FlywheelRunRequest(route="demo", base="demo"), team_id=None, actor="key:k1")
run.step("dataset").start()
store.save(run)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.protocol import APIError
from lmdeck.protocol.flywheel import STEPS, FlywheelRunRequest
from lmdeck.registry.sql import dumps, loads, new_id

_COLUMNS = "id, status, spec, steps, error, team_id, created_by, created_at, updated_at"


@dataclass
class StepState:
    """One step: its status, its output (what later steps and a resume read), its times and progress line."""

    name: str
    status: str = "pending"
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    progress: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def start(self) -> None:
        self.status, self.error, self.started_at, self.finished_at = "running", None, time.time(), None

    def finish(self, status: str, *, error: str | None = None) -> None:
        self.status, self.error, self.finished_at = status, error, time.time()

    @property
    def wall_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "progress": self.progress,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepState:
        return cls(**{k: v for k, v in data.items() if k != "wall_s"})


@dataclass
class FlywheelRun:
    id: str
    status: str
    spec: FlywheelRunRequest
    steps: list[StepState]
    team_id: str | None
    created_by: str | None
    created_at: float
    updated_at: float
    error: str | None = None

    def step(self, name: str) -> StepState:
        return next(s for s in self.steps if s.name == name)

    def output(self, name: str) -> dict[str, Any]:
        return self.step(name).output

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "flywheel.run",
            "status": self.status,
            "request": self.spec.model_dump(mode="json"),
            "steps": [s.to_dict() for s in self.steps],
            "error": self.error,
            "team_id": self.team_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def run_not_found(run_id: str) -> APIError:
    return APIError(404, f"no flywheel run {run_id!r}; list them with `lmdeck flywheel list`", code="not_found")


class FlywheelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, spec: FlywheelRunRequest, *, team_id: str | None, actor: str | None) -> FlywheelRun:
        at = time.time()
        run = FlywheelRun(
            id="fw_" + new_id()[:24],
            status="running",
            spec=spec,
            steps=[StepState(name) for name in STEPS],
            team_id=team_id,
            created_by=actor,
            created_at=at,
            updated_at=at,
        )
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO flywheel_runs ({_COLUMNS}) VALUES (:id, :status, :spec, :steps, :error, :team, "
                    ":actor, :at, :at)"
                ),
                {**self._values(run), "team": team_id, "actor": actor, "at": at},
            )
        return run

    @staticmethod
    def _values(run: FlywheelRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "status": run.status,
            "spec": dumps(run.spec.model_dump(mode="json")),
            "steps": dumps([s.to_dict() for s in run.steps]),
            "error": run.error,
        }

    def save(self, run: FlywheelRun) -> None:
        run.updated_at = time.time()
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE flywheel_runs SET status = :status, steps = :steps, error = :error, updated_at = :at "
                    "WHERE id = :id"
                ),
                {**self._values(run), "at": run.updated_at},
            )

    @staticmethod
    def _run(row: Any) -> FlywheelRun:
        return FlywheelRun(
            id=row[0],
            status=row[1],
            spec=FlywheelRunRequest.model_validate(loads(row[2])),
            steps=[StepState.from_dict(s) for s in loads(row[3])],
            error=row[4],
            team_id=row[5],
            created_by=row[6],
            created_at=float(row[7]),
            updated_at=float(row[8]),
        )

    def get(self, run_id: str) -> FlywheelRun:
        with self.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_COLUMNS} FROM flywheel_runs WHERE id = :id"), {"id": run_id}).first()
        if row is None:
            raise run_not_found(run_id)
        return self._run(row)

    def running(self) -> list[FlywheelRun]:
        """Every run stored as ``running``, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM flywheel_runs WHERE status = 'running' ORDER BY created_at")
            ).all()
        return [self._run(r) for r in rows]

    def list(self, *, team_id: str | None = None, all_teams: bool = True, limit: int = 100) -> list[FlywheelRun]:
        where = "" if all_teams else "WHERE team_id = :team" if team_id is not None else "WHERE team_id IS NULL"
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM flywheel_runs {where} ORDER BY created_at DESC LIMIT :limit"),
                {"team": team_id, "limit": limit},
            ).all()
        return [self._run(r) for r in rows]
