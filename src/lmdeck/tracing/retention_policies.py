"""Per team and per route retention: the stored policies, and which one decides for each trace.

    store = RetentionPolicyStore(db)
    store.save(RetentionPolicySpec(name="a-bodies", team="team-a", body_days=7), actor="key:admin")
    rules = effective_rules(store.merged(configured), body_days=None, trace_days=30)
    [r.name for r in rules]        # ["a-bodies", "tracing.retention"]: each trace under exactly one

A trace is under the most specific policy that covers it (team and route, then team, then
route) or, covered by none, under the global ``tracing.retention`` (``body_days``, ``raw_days``).
Each :class:`Rule` carries a SQL condition that is true for exactly the traces it decides, so
the rules partition the traces table and one retention run never applies two rules to a trace.
Policies stored through the API replace the config file's of the same name or the same scope.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, not_, or_, text, true

from lmdeck.db import Database
from lmdeck.protocol.retention import RetentionPolicySpec
from lmdeck.tracing.schema import traces

#: The name the global ``tracing.retention`` settings go by in counts and the audit log.
GLOBAL = "tracing.retention"


def scope_of(spec: RetentionPolicySpec) -> tuple[str | None, str | None]:
    """The (team, route) a policy covers."""
    return spec.team, spec.route


def rank(spec: RetentionPolicySpec) -> int:
    """How specific a policy is: 3 team and route, 2 team, 1 route."""
    return (2 if spec.team is not None else 0) + (1 if spec.route is not None else 0)


def covers(spec: RetentionPolicySpec) -> ColumnElement[bool]:
    """True for the traces of the policy's team and route (never NULL: a trace without a team is no team's)."""
    conditions: list[ColumnElement[bool]] = []
    if spec.team is not None:
        conditions.append(func.coalesce(traces.c.team_id, "") == spec.team)
    if spec.route is not None:
        conditions.append(func.coalesce(traces.c.route, "") == spec.route)
    return and_(true(), *conditions)


def _overlaps(a: RetentionPolicySpec, b: RetentionPolicySpec) -> bool:
    return (a.team is None or b.team is None or a.team == b.team) and (
        a.route is None or b.route is None or a.route == b.route
    )


@dataclass(frozen=True)
class Rule:
    """What retention does to the traces ``condition`` selects: bodies cleared after ``body_days``,
    traces deleted after ``trace_days`` (None: kept)."""

    name: str
    condition: ColumnElement[bool]
    body_days: int | None
    trace_days: int | None


def effective_rules(
    policies: Sequence[RetentionPolicySpec], *, body_days: int | None, trace_days: int | None
) -> list[Rule]:
    """One rule per policy and one for the global settings (``body_days``, ``trace_days``), whose
    conditions partition the traces: each policy's excludes the traces a more specific one covers."""
    rules: list[Rule] = []
    for spec in policies:
        specific = [covers(q) for q in policies if rank(q) > rank(spec) and _overlaps(q, spec)]
        condition = and_(covers(spec), not_(or_(*specific))) if specific else covers(spec)
        rules.append(
            Rule(
                spec.name,
                condition,
                spec.body_days if spec.body_days is not None else body_days,
                spec.trace_days if spec.trace_days is not None else trace_days,
            )
        )
    anywhere = not_(or_(*(covers(p) for p in policies))) if policies else true()
    rules.append(Rule(GLOBAL, anywhere, body_days, trace_days))
    return rules


class RetentionPolicyStore:
    """The ``retention_policies`` table (blocking: call off the event loop)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self) -> list[RetentionPolicySpec]:
        """Every stored policy, by name."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT name, team_id, route, body_days, trace_days FROM retention_policies ORDER BY name")
            ).all()
        return [RetentionPolicySpec(name=r[0], team=r[1], route=r[2], body_days=r[3], trace_days=r[4]) for r in rows]

    def get(self, name: str) -> RetentionPolicySpec | None:
        return next((p for p in self.list() if p.name == name), None)

    def save(self, spec: RetentionPolicySpec, actor: str | None) -> RetentionPolicySpec | None:
        """Create or replace ``spec``; the policy it replaced (None when new).

        Raises ``ValueError`` when another stored policy covers the same team and route."""
        at = time.time()
        with self.db.engine.begin() as conn:
            rows = conn.execute(
                text("SELECT name, team_id, route, body_days, trace_days FROM retention_policies")
            ).all()
            stored = [
                RetentionPolicySpec(name=r[0], team=r[1], route=r[2], body_days=r[3], trace_days=r[4]) for r in rows
            ]
            clash = next((p for p in stored if p.name != spec.name and scope_of(p) == scope_of(spec)), None)
            if clash is not None:
                raise ValueError(
                    f"retention policy {clash.name!r} already covers team {spec.team or '*'} and route "
                    f"{spec.route or '*'}: change that policy, or delete it first"
                )
            before = next((p for p in stored if p.name == spec.name), None)
            values = {
                "n": spec.name,
                "team": spec.team,
                "route": spec.route,
                "body": spec.body_days,
                "trace": spec.trace_days,
                "t": at,
                "a": actor,
            }
            if before is None:
                conn.execute(
                    text(
                        "INSERT INTO retention_policies (name, team_id, route, body_days, trace_days, created_at, "
                        "updated_at, updated_by) VALUES (:n, :team, :route, :body, :trace, :t, :t, :a)"
                    ),
                    values,
                )
            else:
                conn.execute(
                    text(
                        "UPDATE retention_policies SET team_id = :team, route = :route, body_days = :body, "
                        "trace_days = :trace, updated_at = :t, updated_by = :a WHERE name = :n"
                    ),
                    values,
                )
        return before

    def delete(self, name: str) -> RetentionPolicySpec | None:
        """Delete the stored policy ``name``; the policy deleted, or None when there was none."""
        before = self.get(name)
        if before is not None:
            with self.db.engine.begin() as conn:
                conn.execute(text("DELETE FROM retention_policies WHERE name = :n"), {"n": name})
        return before
