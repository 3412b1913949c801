"""The ``eval_feedback`` table (blocking: call off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, text

from lmdeck.db import Database
from lmdeck.evaluation.sql import team_condition
from lmdeck.registry.sql import dumps, loads, new_id, now

_COLUMNS = (
    "id, trace_id, name, value, label, comment, source, author, route, prompt_name, prompt_version, model, "
    "team_id, key_id, created_at, correction"
)
GROUPINGS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt_name", "prompt_version"),
    "model": ("route", "model"),
    "route": ("route",),
    "version": ("route", "prompt_name", "prompt_version", "model"),
}


@dataclass(frozen=True)
class FeedbackEntry:
    trace_id: str
    name: str
    value: float | None
    label: str | None
    comment: str | None
    source: str
    author: str | None
    route: str | None
    prompt_name: str | None
    prompt_version: int | None
    model: str | None
    team_id: str | None
    key_id: str | None
    created_at: float = 0.0
    id: str = ""
    #: The answer the model should have given (text or JSON), when the feedback corrects it.
    correction: Any = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompt"] = data.pop("prompt_name")
        return data


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entry: FeedbackEntry) -> FeedbackEntry:
        stored = FeedbackEntry(**{**asdict(entry), "id": entry.id or "fb_" + new_id()[:24], "created_at": now()})
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO eval_feedback ({_COLUMNS}) VALUES (:id, :trace_id, :name, :value, :label, :comment, "
                    ":source, :author, :route, :prompt_name, :prompt_version, :model, :team_id, :key_id, :created_at, "
                    ":correction)"
                ),
                {**asdict(stored), "correction": dumps(stored.correction) if stored.correction is not None else None},
            )
        return stored

    def find(
        self, *, trace_id: str | None = None, team_id: str | None = None, all_teams: bool = True, limit: int = 100
    ) -> list[FeedbackEntry]:
        conditions, params = [], {"limit": limit, "team": team_id, "trace": trace_id}
        if trace_id is not None:
            conditions.append("trace_id = :trace")
        if not all_teams:
            conditions.append(team_condition(team_id))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM eval_feedback {where} ORDER BY created_at DESC LIMIT :limit"), params
            ).all()
        return [
            FeedbackEntry(
                id=r[0],
                trace_id=r[1],
                name=r[2],
                value=r[3],
                label=r[4],
                comment=r[5],
                source=r[6],
                author=r[7],
                route=r[8],
                prompt_name=r[9],
                prompt_version=r[10],
                model=r[11],
                team_id=r[12],
                key_id=r[13],
                created_at=float(r[14]),
                correction=loads(r[15]) if r[15] is not None else None,
            )
            for r in rows
        ]

    def corrections(self, trace_ids: Sequence[str]) -> dict[str, Any]:
        """The newest correction given on each of ``trace_ids`` that has one: trace id → correction."""
        found: dict[str, Any] = {}
        trace_ids = list(trace_ids)
        for start in range(0, len(trace_ids), 500):
            chunk = trace_ids[start : start + 500]
            sql = text(
                "SELECT trace_id, correction FROM eval_feedback WHERE correction IS NOT NULL "
                "AND trace_id IN :ids ORDER BY created_at"
            ).bindparams(bindparam("ids", expanding=True))
            with self.db.engine.connect() as conn:
                for trace_id, correction in conn.execute(sql, {"ids": chunk}):
                    found[str(trace_id)] = loads(correction)
        return found

    def traces_with_value(self, op: str, value: float) -> set[str]:
        """The traces whose mean feedback value compares to ``value`` by ``op`` (one of = != > >= < <=)."""
        if op not in ("=", "!=", ">", ">=", "<", "<="):
            raise ValueError(f"unknown comparison {op!r}")
        sql = text(
            "SELECT trace_id FROM eval_feedback WHERE value IS NOT NULL "
            f"GROUP BY trace_id HAVING AVG(value) {'<>' if op == '!=' else op} :v"
        )
        with self.db.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sql, {"v": value})}

    def summary(self, by: str, *, team_id: str | None = None, all_teams: bool = True) -> list[dict[str, Any]]:
        """Count and mean value of each feedback name, grouped by prompt version, model, route or all."""
        columns = GROUPINGS[by]
        group = ", ".join((*columns, "name"))
        where = "" if all_teams else f"WHERE {team_condition(team_id)}"
        sql = text(
            f"SELECT {group}, COUNT(*), COUNT(value), AVG(value) FROM eval_feedback {where} "
            f"GROUP BY {group} ORDER BY {group}"
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(sql, {"team": team_id}).all()
        out = []
        for row in rows:
            keys = {("prompt" if c == "prompt_name" else c): row[i] for i, c in enumerate((*columns, "name"))}
            n = len(columns) + 1
            out.append({**keys, "count": int(row[n]), "valued": int(row[n + 1]), "mean": row[n + 2]})
        return out
