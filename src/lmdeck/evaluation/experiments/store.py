"""The ``eval_experiments`` and ``eval_exposures`` tables (blocking: call off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.evaluation.stats import Moments
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.evaluation import ExperimentSpec
from lmdeck.registry.owners import OwnerColumns, owner_of_row
from lmdeck.registry.sql import dumps, loads, now


@dataclass(frozen=True)
class Exposure:
    """One request served by a variant."""

    trace_id: str
    experiment: str
    variant: str
    subject: str | None
    status_code: int
    latency_ms: float
    cost: float
    created_at: float


@dataclass
class ExperimentRecord:
    spec: ExperimentSpec
    status: str
    created_at: float
    created_by: str | None
    stopped_at: float | None = None
    outcome: dict[str, Any] | None = None
    owner: Owner = field(default_factory=Owner)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.model_dump(mode="json"),
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "stopped_at": self.stopped_at,
            "outcome": self.outcome,
            **self.owner.to_dict(),
        }


@dataclass
class VariantTotals:
    """What the store knows about one variant: traffic, errors, latency, cost, scores, feedback."""

    requests: int = 0
    errors: int = 0
    latency: Moments = field(default_factory=Moments)
    cost: Moments = field(default_factory=Moments)
    scores: dict[str, Moments] | None = None
    feedback: dict[str, Moments] | None = None


def _moments(n: Any, mean: Any, m2: Any) -> Moments:
    return Moments(int(n or 0), float(mean or 0.0), float(m2 or 0.0))


#: Larger than any count of exposures: the horizon of an experiment read without one.
_NO_HORIZON = 2**62


class ExperimentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, spec: ExperimentSpec, actor: str | None, owner: Owner | None = None) -> ExperimentRecord:
        record = ExperimentRecord(spec, "running", now(), actor, owner=owner or Owner())
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO eval_experiments (name, spec, status, created_at, created_by, team_id, visibility) "
                    "VALUES (:n, :s, :st, :t, :a, :team, :vis)"
                ),
                {
                    "n": spec.name,
                    "s": dumps(spec.model_dump(mode="json")),
                    "st": "running",
                    "t": record.created_at,
                    "a": actor,
                    "team": record.owner.team_id,
                    "vis": record.owner.visibility,
                },
            )
        return record

    def set_owner(self, name: str, owner: Owner) -> None:
        OwnerColumns("eval_experiments").set_in(self.db, name, owner)

    def get(self, name: str) -> ExperimentRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_COLUMNS} FROM eval_experiments WHERE name = :n"),
                {"n": name},
            ).first()
        return _record(row) if row else None

    def all(self, status: str | None = None) -> list[ExperimentRecord]:
        where = "WHERE status = :s" if status else ""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM eval_experiments {where} ORDER BY created_at DESC"),
                {"s": status},
            ).all()
        return [_record(r) for r in rows]

    def stop(self, name: str, outcome: dict[str, Any] | None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE eval_experiments SET status = 'stopped', stopped_at = :t, outcome = :o WHERE name = :n"),
                {"t": now(), "o": dumps(outcome) if outcome is not None else None, "n": name},
            )

    def add_exposures(self, exposures: Sequence[Exposure]) -> None:
        if not exposures:
            return
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO eval_exposures (trace_id, experiment, variant, subject, status_code, latency_ms, "
                    "cost, created_at) VALUES (:trace_id, :experiment, :variant, :subject, :status_code, "
                    ":latency_ms, :cost, :created_at) ON CONFLICT (trace_id) DO NOTHING"
                ),
                [e.__dict__ for e in exposures],
            )

    def totals(self, name: str, horizon: int | None = None) -> dict[str, VariantTotals]:
        """Per-variant count, mean and centred sum of squares, computed by the database in two passes.

        Centring on the mean before squaring keeps the variance of values far from zero (latencies of
        1e9 ± 1 ms) that a sum of squares minus a squared sum would cancel away. With a ``horizon``
        (a fixed-horizon experiment's ``sample_size``) only each variant's first ``horizon`` exposures,
        and first ``horizon`` values of each score and feedback name, count: reads after the horizon
        see the same data, so the classical test is read once however often it is shown.
        """
        params = {"e": name, "h": horizon if horizon is not None else _NO_HORIZON}
        out: dict[str, VariantTotals] = {}
        with self.db.engine.connect() as conn:
            for row in conn.execute(
                text(
                    "WITH r AS (SELECT variant, status_code, latency_ms, cost, ROW_NUMBER() OVER "
                    "(PARTITION BY variant ORDER BY created_at, trace_id) AS rn "
                    "FROM eval_exposures WHERE experiment = :e), "
                    "x AS (SELECT * FROM r WHERE rn <= :h), "
                    "m AS (SELECT variant, AVG(latency_ms) AS ml, AVG(cost) AS mc FROM x GROUP BY variant) "
                    "SELECT x.variant, COUNT(*), SUM(CASE WHEN x.status_code >= 400 THEN 1 ELSE 0 END), "
                    "m.ml, SUM((x.latency_ms - m.ml) * (x.latency_ms - m.ml)), "
                    "m.mc, SUM((x.cost - m.mc) * (x.cost - m.mc)) "
                    "FROM x JOIN m ON m.variant = x.variant GROUP BY x.variant, m.ml, m.mc"
                ),
                params,
            ):
                out[row[0]] = VariantTotals(
                    requests=int(row[1]),
                    errors=int(row[2] or 0),
                    latency=_moments(row[1], row[3], row[4]),
                    cost=_moments(row[1], row[5], row[6]),
                    scores={},
                    feedback={},
                )
            for table, column, attr in (
                ("eval_trace_scores", "evaluator", "scores"),
                ("eval_feedback", "name", "feedback"),
            ):
                rows = conn.execute(
                    text(
                        f"WITH r AS (SELECT x.variant AS variant, s.{column} AS k, s.value AS value, "
                        f"ROW_NUMBER() OVER (PARTITION BY x.variant, s.{column} ORDER BY x.created_at, x.trace_id) "
                        f"AS rn FROM eval_exposures x JOIN {table} s ON s.trace_id = x.trace_id "
                        "WHERE x.experiment = :e AND s.value IS NOT NULL), "
                        "v AS (SELECT * FROM r WHERE rn <= :h), "
                        "m AS (SELECT variant, k, AVG(value) AS mv FROM v GROUP BY variant, k) "
                        "SELECT v.variant, v.k, COUNT(v.value), m.mv, SUM((v.value - m.mv) * (v.value - m.mv)) "
                        "FROM v JOIN m ON m.variant = v.variant AND m.k = v.k GROUP BY v.variant, v.k, m.mv"
                    ),
                    params,
                ).all()
                for variant, key, n, mean, m2 in rows:
                    totals = out.setdefault(variant, VariantTotals(scores={}, feedback={}))
                    bucket = getattr(totals, attr)
                    bucket[str(key)] = _moments(n, mean, m2)
        return out


_COLUMNS = "spec, status, created_at, created_by, stopped_at, outcome, team_id, visibility"


def _record(row: Any) -> ExperimentRecord:
    return ExperimentRecord(
        spec=ExperimentSpec.model_validate(loads(row[0])),
        status=row[1],
        created_at=float(row[2]),
        created_by=row[3],
        stopped_at=float(row[4]) if row[4] is not None else None,
        outcome=loads(row[5]),
        owner=owner_of_row(row[6], row[7]),
    )
