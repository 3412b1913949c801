"""The release tables (blocking: call off the event loop).

A release row carries a ``revision`` that every transition checks and bumps, so two processes (or
the controller and an operator) acting on one release at once cannot both win: the loser gets
:class:`StaleRelease` and re-reads. Each transition writes its history row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.delivery import Analysis, Baseline, ReleaseEvent, ReleaseSpec, ReleaseState, ReleaseStatus
from lmdeck.registry.owners import owner_of_row
from lmdeck.registry.sql import dumps, loads


class StaleRelease(Exception):
    """The release changed since it was read; read it again and decide again."""


@dataclass
class ReleaseRecord:
    """One row of ``delivery_releases``."""

    spec: ReleaseSpec
    state: ReleaseState
    created_at: float
    created_by: str | None = None
    step: int | None = None
    baseline: Baseline | None = None
    started_at: float | None = None
    step_started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    last_analysis: Analysis | None = None
    revision: int = 0
    owner: Owner = field(default_factory=Owner)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def percent(self) -> float:
        """The candidate's share of covered traffic now, in percent."""
        if self.state == "canary" and self.step is not None:
            return self.spec.strategy.steps[self.step]
        if self.state == "promoted":
            return 100.0
        return 0.0

    def status(self) -> ReleaseStatus:
        return ReleaseStatus(
            spec=self.spec,
            state=self.state,
            step=self.step,
            percent=self.percent,
            baseline=self.baseline,
            created_at=self.created_at,
            created_by=self.created_by,
            started_at=self.started_at,
            step_started_at=self.step_started_at,
            finished_at=self.finished_at,
            reason=self.reason,
            last_analysis=self.last_analysis,
            team_id=self.owner.team_id,
            visibility=self.owner.visibility,
        )


@dataclass(frozen=True)
class ReleaseExposure:
    """One request a release covered: the variant and step that served it and what it observed."""

    trace_id: str
    release: str
    variant: str
    step: int
    status_code: int
    latency_ms: float
    ttft_ms: float | None
    cost: float
    blocked: bool
    created_at: float


_COLUMNS = (
    "spec, state, created_at, created_by, step, baseline, started_at, step_started_at, finished_at, reason, "
    "last_analysis, revision, team_id, visibility"
)


def _record(row: Any) -> ReleaseRecord:
    baseline = loads(row[5])
    analysis = loads(row[10])
    return ReleaseRecord(
        spec=ReleaseSpec.model_validate(loads(row[0])),
        state=row[1],
        created_at=float(row[2]),
        created_by=row[3],
        step=int(row[4]) if row[4] is not None else None,
        baseline=Baseline.model_validate(baseline) if baseline is not None else None,
        started_at=float(row[6]) if row[6] is not None else None,
        step_started_at=float(row[7]) if row[7] is not None else None,
        finished_at=float(row[8]) if row[8] is not None else None,
        reason=row[9],
        last_analysis=Analysis.model_validate(analysis) if analysis is not None else None,
        revision=int(row[11]),
        owner=owner_of_row(row[12], row[13]),
    )


class ReleaseStore:
    """Releases, their history and their exposures in the gateway's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, record: ReleaseRecord) -> None:
        """Insert a new release (``IntegrityError`` when the name is taken)."""
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO delivery_releases (name, route, spec, state, created_at, created_by, revision, "
                    "team_id, visibility) VALUES (:n, :r, :s, :st, :t, :a, 0, :team, :vis)"
                ),
                {
                    "n": record.name,
                    "r": record.spec.route,
                    "s": dumps(record.spec.model_dump(mode="json")),
                    "st": record.state,
                    "t": record.created_at,
                    "a": record.created_by,
                    "team": record.owner.team_id,
                    "vis": record.owner.visibility,
                },
            )

    def get(self, name: str) -> ReleaseRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_COLUMNS} FROM delivery_releases WHERE name = :n"), {"n": name}).first()
        return _record(row) if row else None

    def all(self, states: Sequence[str] | None = None) -> list[ReleaseRecord]:
        """Releases, newest first; ``states`` keeps those in one of them."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {_COLUMNS} FROM delivery_releases ORDER BY created_at DESC")).all()
        out = [_record(r) for r in rows]
        return [r for r in out if states is None or r.state in states]

    def save(self, record: ReleaseRecord, event: ReleaseEvent | None) -> None:
        """Write ``record`` if its revision is still the stored one (else :class:`StaleRelease`), with
        ``event`` appended to its history in the same transaction; bumps ``record.revision``."""
        with self.db.engine.begin() as conn:
            updated = conn.execute(
                text(
                    "UPDATE delivery_releases SET state = :st, step = :step, baseline = :b, started_at = :sa, "
                    "step_started_at = :ssa, finished_at = :fa, reason = :reason, last_analysis = :la, "
                    "revision = revision + 1 WHERE name = :n AND revision = :rev"
                ),
                {
                    "st": record.state,
                    "step": record.step,
                    "b": dumps(record.baseline.model_dump(mode="json")) if record.baseline is not None else None,
                    "sa": record.started_at,
                    "ssa": record.step_started_at,
                    "fa": record.finished_at,
                    "reason": record.reason,
                    "la": dumps(record.last_analysis.model_dump(mode="json"))
                    if record.last_analysis is not None
                    else None,
                    "n": record.name,
                    "rev": record.revision,
                },
            )
            if updated.rowcount == 0:
                raise StaleRelease(record.name)
            if event is not None:
                seq = conn.execute(
                    text("SELECT COALESCE(MAX(seq), 0) + 1 FROM delivery_release_events WHERE release = :n"),
                    {"n": record.name},
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO delivery_release_events (release, seq, at, action, from_state, to_state, step, "
                        "percent, actor, reason, evidence) VALUES (:release, :seq, :at, :action, :from_state, "
                        ":to_state, :step, :percent, :actor, :reason, :evidence)"
                    ),
                    {
                        **event.model_dump(exclude={"evidence"}),
                        "seq": int(seq),
                        "evidence": dumps(event.evidence) if event.evidence is not None else None,
                    },
                )
        record.revision += 1

    def history(self, name: str) -> list[ReleaseEvent]:
        """Every transition of release ``name``, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT release, at, action, from_state, to_state, step, percent, actor, reason, evidence "
                    "FROM delivery_release_events WHERE release = :n ORDER BY seq"
                ),
                {"n": name},
            ).all()
        return [
            ReleaseEvent(
                release=r[0],
                at=float(r[1]),
                action=r[2],
                from_state=r[3],
                to_state=r[4],
                step=r[5],
                percent=r[6],
                actor=r[7],
                reason=r[8],
                evidence=loads(r[9]),
            )
            for r in rows
        ]

    # -- exposures -------------------------------------------------------------------------------

    def add_exposures(self, exposures: Sequence[ReleaseExposure]) -> None:
        if not exposures:
            return
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO delivery_release_exposures (trace_id, release, variant, step, status_code, "
                    "latency_ms, ttft_ms, cost, blocked, created_at) VALUES (:trace_id, :release, :variant, :step, "
                    ":status_code, :latency_ms, :ttft_ms, :cost, :blocked, :created_at) "
                    "ON CONFLICT (trace_id) DO NOTHING"
                ),
                [{**e.__dict__, "blocked": int(e.blocked)} for e in exposures],
            )

    def exposures(self, name: str, step: int | None = None) -> list[ReleaseExposure]:
        """The exposures of release ``name`` (of one canary ``step`` when given), oldest first."""
        where = "release = :n" + (" AND step = :s" if step is not None else "")
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT trace_id, release, variant, step, status_code, latency_ms, ttft_ms, cost, blocked, "
                    f"created_at FROM delivery_release_exposures WHERE {where} ORDER BY created_at, trace_id"
                ),
                {"n": name, "s": step},
            ).all()
        return [
            ReleaseExposure(
                trace_id=r[0],
                release=r[1],
                variant=r[2],
                step=int(r[3]),
                status_code=int(r[4]),
                latency_ms=float(r[5]),
                ttft_ms=float(r[6]) if r[6] is not None else None,
                cost=float(r[7]),
                blocked=bool(r[8]),
                created_at=float(r[9]),
            )
            for r in rows
        ]

    def values(self, name: str, metric: str, step: int | None = None) -> dict[str, list[float]]:
        """Per variant, the online scores (``score:<evaluator>``) or feedback values (``feedback:<name>``)
        of the traces release ``name`` served (in one ``step`` when given)."""
        kind, _, key = metric.partition(":")
        table, column = ("eval_trace_scores", "evaluator") if kind == "score" else ("eval_feedback", "name")
        where = "x.release = :n" + (" AND x.step = :s" if step is not None else "")
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT x.variant, s.value FROM delivery_release_exposures x JOIN {table} s "
                    f"ON s.trace_id = x.trace_id WHERE {where} AND s.{column} = :k AND s.value IS NOT NULL"
                ),
                {"n": name, "s": step, "k": key},
            ).all()
        out: dict[str, list[float]] = {"baseline": [], "candidate": []}
        for variant, value in rows:
            out.setdefault(str(variant), []).append(float(value))
        return out
