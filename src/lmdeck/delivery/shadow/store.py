"""The stored shadow pairs (table ``delivery_shadow_pairs``); every method blocks: call it off the event loop.

store = ShadowPairStore(db)
store.add(pair)
store.tally("reply-v3")        # PairTally(wins=12, ties=5, losses=3, errors=1, cost_micros=5400)
store.recent("reply-v3", 20)   # the newest pairs, newest first
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.protocol.shadow import ShadowPair
from lmdeck.registry.sql import dumps, loads


@dataclass(frozen=True)
class PairTally:
    """A release's judged pairs counted by outcome, and the candidate's spend in micro-dollars."""

    wins: int = 0
    ties: int = 0
    losses: int = 0
    errors: int = 0
    cost_micros: int = 0

    @property
    def pairs(self) -> int:
        """Pairs with an outcome (errors are not pairs: their judging failed)."""
        return self.wins + self.ties + self.losses


class ShadowPairStore:
    """Writes and reads ``delivery_shadow_pairs``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, pair: ShadowPair) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO delivery_shadow_pairs (id, release, baseline_trace_id, candidate_trace_id, "
                    "outcome, judgements, baseline, candidate, cost_micros, error, created_at) VALUES "
                    "(:id, :release, :b, :c, :outcome, :judgements, :bt, :ct, :cost, :error, :at)"
                ),
                {
                    "id": pair.id,
                    "release": pair.release,
                    "b": pair.baseline_trace_id,
                    "c": pair.candidate_trace_id,
                    "outcome": pair.outcome,
                    "judgements": dumps(pair.judgements),
                    "bt": pair.baseline,
                    "ct": pair.candidate,
                    "cost": pair.cost_micros,
                    "error": pair.error,
                    "at": pair.created_at,
                },
            )

    def tally(self, release: str) -> PairTally:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT outcome, COUNT(*), COALESCE(SUM(cost_micros), 0) FROM delivery_shadow_pairs "
                    "WHERE release = :r GROUP BY outcome"
                ),
                {"r": release},
            ).all()
        counts = {str(outcome): int(n) for outcome, n, _ in rows if outcome is not None}
        errors = sum(int(n) for outcome, n, _ in rows if outcome is None)
        return PairTally(
            wins=counts.get("win", 0),
            ties=counts.get("tie", 0),
            losses=counts.get("loss", 0),
            errors=errors,
            cost_micros=sum(int(cost) for _, _, cost in rows),
        )

    def recent(self, release: str, limit: int = 50) -> list[ShadowPair]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, release, baseline_trace_id, candidate_trace_id, outcome, judgements, baseline, "
                    "candidate, cost_micros, error, created_at FROM delivery_shadow_pairs WHERE release = :r "
                    "ORDER BY created_at DESC, id DESC LIMIT :n"
                ),
                {"r": release, "n": limit},
            ).all()
        return [
            ShadowPair(
                id=row[0],
                release=row[1],
                baseline_trace_id=row[2],
                candidate_trace_id=row[3],
                outcome=row[4],
                judgements=loads(row[5]) or [],
                baseline=row[6],
                candidate=row[7],
                cost_micros=int(row[8]),
                error=row[9],
                created_at=float(row[10]),
            )
            for row in rows
        ]
