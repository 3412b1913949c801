"""The ``eval_online_rules`` and ``eval_trace_scores`` tables (blocking: call off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.evaluation.sql import team_condition
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.evaluation import OnlineRule
from lmdeck.registry.owners import OwnerColumns, owner_of_row
from lmdeck.registry.sql import dumps, loads, new_id, now


@dataclass(frozen=True)
class TraceScore:
    """One evaluator's score of one live trace."""

    trace_id: str
    rule: str
    evaluator: str
    value: float | None
    label: str | None
    explanation: str
    route: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    model: str | None = None
    team_id: str | None = None
    key_id: str | None = None
    created_at: float = 0.0
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "rule": self.rule,
            "evaluator": self.evaluator,
            "value": self.value,
            "label": self.label,
            "explanation": self.explanation,
            "route": self.route,
            "prompt": self.prompt_name,
            "prompt_version": self.prompt_version,
            "model": self.model,
            "created_at": self.created_at,
        }


_SCORE_COLUMNS = (
    "id, trace_id, rule, evaluator, value, label, explanation, route, prompt_name, prompt_version, model, "
    "team_id, key_id, created_at"
)


class OnlineStore:
    """Online rules and the scores they produced."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owners = OwnerColumns("eval_online_rules")

    def save_rule(self, rule: OnlineRule, actor: str | None, owner: Owner | None = None) -> bool:
        """Create (owned by ``owner``) or replace a rule, keeping its owner; True when it is new."""
        spec = dumps(rule.model_dump(mode="json"))
        at = now()
        owner = owner or Owner()
        with self.db.engine.begin() as conn:
            exists = conn.execute(text("SELECT 1 FROM eval_online_rules WHERE name = :n"), {"n": rule.name}).first()
            if exists:
                conn.execute(
                    text("UPDATE eval_online_rules SET spec = :s, enabled = :e, updated_at = :t WHERE name = :n"),
                    {"s": spec, "e": int(rule.enabled), "t": at, "n": rule.name},
                )
                return False
            conn.execute(
                text(
                    "INSERT INTO eval_online_rules (name, spec, enabled, created_at, created_by, updated_at, "
                    "team_id, visibility) VALUES (:n, :s, :e, :t, :a, :t, :team, :vis)"
                ),
                {
                    "n": rule.name,
                    "s": spec,
                    "e": int(rule.enabled),
                    "t": at,
                    "a": actor,
                    "team": owner.team_id,
                    "vis": owner.visibility,
                },
            )
            return True

    def delete_rule(self, name: str) -> bool:
        with self.db.engine.begin() as conn:
            result = conn.execute(text("DELETE FROM eval_online_rules WHERE name = :n"), {"n": name})
        return bool(result.rowcount)

    def rules(self) -> list[OnlineRule]:
        return [rule for rule, _ in self.owned_rules()]

    def owned_rules(self) -> list[tuple[OnlineRule, Owner]]:
        """Every stored rule with its owner."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT spec, team_id, visibility FROM eval_online_rules ORDER BY name")).all()
        return [(OnlineRule.model_validate(loads(r[0])), owner_of_row(r[1], r[2])) for r in rows]

    def rule_owner(self, name: str) -> Owner | None:
        with self.db.engine.connect() as conn:
            return self.owners.get(conn, name)

    def set_owner(self, name: str, owner: Owner) -> None:
        self.owners.set_in(self.db, name, owner)

    def add_scores(self, scores: Sequence[TraceScore]) -> None:
        if not scores:
            return
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO eval_trace_scores ({_SCORE_COLUMNS}) VALUES (:id, :trace_id, :rule, :evaluator, "
                    ":value, :label, :explanation, :route, :prompt_name, :prompt_version, :model, :team_id, "
                    ":key_id, :created_at)"
                ),
                [
                    {
                        "id": s.id or new_id(),
                        "trace_id": s.trace_id,
                        "rule": s.rule,
                        "evaluator": s.evaluator,
                        "value": s.value,
                        "label": s.label,
                        "explanation": s.explanation,
                        "route": s.route,
                        "prompt_name": s.prompt_name,
                        "prompt_version": s.prompt_version,
                        "model": s.model,
                        "team_id": s.team_id,
                        "key_id": s.key_id,
                        "created_at": s.created_at or now(),
                    }
                    for s in scores
                ],
            )

    def scores(
        self,
        *,
        trace_id: str | None = None,
        rule: str | None = None,
        team_id: str | None = None,
        all_teams: bool = True,
        limit: int = 100,
    ) -> list[TraceScore]:
        conditions: list[str] = [] if all_teams else [team_condition(team_id)]
        params: dict[str, object] = {"limit": limit, "team": team_id}
        for column, value in (("trace_id", trace_id), ("rule", rule)):
            if value is not None:
                conditions.append(f"{column} = :{column}")
                params[column] = value
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_SCORE_COLUMNS} FROM eval_trace_scores {where} ORDER BY created_at DESC LIMIT :limit"),
                params,
            ).all()
        return [
            TraceScore(
                id=r[0],
                trace_id=r[1],
                rule=r[2],
                evaluator=r[3],
                value=r[4],
                label=r[5],
                explanation=r[6] or "",
                route=r[7],
                prompt_name=r[8],
                prompt_version=r[9],
                model=r[10],
                team_id=r[11],
                key_id=r[12],
                created_at=float(r[13]),
            )
            for r in rows
        ]

    def summary(self, *, team_id: str | None = None, all_teams: bool = True) -> list[dict[str, Any]]:
        """Mean score and count per route, prompt version, model and evaluator."""
        where = "WHERE value IS NOT NULL" + ("" if all_teams else f" AND {team_condition(team_id)}")
        sql = text(
            "SELECT route, prompt_name, prompt_version, model, evaluator, COUNT(value), AVG(value) "
            f"FROM eval_trace_scores {where} GROUP BY route, prompt_name, prompt_version, model, evaluator "
            "ORDER BY route, prompt_name, prompt_version, model, evaluator"
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(sql, {"team": team_id}).all()
        return [
            {
                "route": r[0],
                "prompt": r[1],
                "prompt_version": r[2],
                "model": r[3],
                "evaluator": r[4],
                "count": int(r[5]),
                "mean": float(r[6]),
            }
            for r in rows
        ]
