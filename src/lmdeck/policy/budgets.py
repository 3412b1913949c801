"""Budgets: how much a key or a team may spend per day, per month or in total.

    store = BudgetStore(db)
    budget = store.put("team", "team_1a2b", "month", limit_micros=250_000_000, soft_limit=0.8)
    budget.window(now)          # (start, end) of the period that contains ``now``, UTC
    store.spent_since(...)      # spend recorded in the traces, to start a ledger from

Amounts are whole micro-dollars (:mod:`lmdeck.money`); dollars appear only in :meth:`Budget.to_dict`.

Periods follow UTC calendar boundaries: a ``day`` budget resets at midnight
UTC, a ``month`` budget on the first of the month, a ``total`` one never.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from lmdeck.db import Database
from lmdeck.money import dollars
from lmdeck.policy.keys import new_id
from lmdeck.protocol.access import Period, Scope
from lmdeck.tracing.signals import Signals

log = logging.getLogger(__name__)

SCOPES: tuple[Scope, ...] = ("key", "team")
PERIODS: tuple[Period, ...] = ("day", "month", "total")


def window_of(period: Period, now: float) -> tuple[float, float | None]:
    """The UTC period containing ``now``: (start, end), end None for ``total``."""
    if period == "total":
        return 0.0, None
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class Budget:
    """A spending limit for one key or team over one period."""

    id: str
    scope: Scope
    subject_id: str
    period: Period
    limit_micros: int
    soft_limit: float
    created_at: float
    updated_at: float

    @property
    def subject(self) -> tuple[Scope, str]:
        return (self.scope, self.subject_id)

    def window(self, now: float) -> tuple[float, float | None]:
        return window_of(self.period, now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "subject_id": self.subject_id,
            "period": self.period,
            "limit_usd": dollars(self.limit_micros),
            "limit_micros": self.limit_micros,
            "soft_limit": self.soft_limit,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


_COLUMNS = "id, scope, subject_id, period, limit_micros, soft_limit, created_at, updated_at"


def _budget(row: Any) -> Budget:
    return Budget(
        id=row[0],
        scope=cast(Scope, row[1]),
        subject_id=row[2],
        period=cast(Period, row[3]),
        limit_micros=int(row[4]),
        soft_limit=float(row[5]),
        created_at=float(row[6]),
        updated_at=float(row[7]),
    )


class BudgetStore:
    """Budgets in the store (blocking calls: run them off the event loop)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[Budget]:
        with self.db.engine.connect() as conn:
            return [_budget(r) for r in conn.execute(text(f"SELECT {_COLUMNS} FROM budgets ORDER BY created_at"))]

    def get(self, budget_id: str) -> Budget | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_COLUMNS} FROM budgets WHERE id = :id"), {"id": budget_id}).first()
        return _budget(row) if row else None

    def find(self, scope: Scope, subject_id: str, period: Period) -> Budget | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_COLUMNS} FROM budgets WHERE scope = :s AND subject_id = :i AND period = :p"),
                {"s": scope, "i": subject_id, "p": period},
            ).first()
        return _budget(row) if row else None

    def put(self, scope: Scope, subject_id: str, period: Period, *, limit_micros: int, soft_limit: float) -> Budget:
        """Create the budget of (scope, subject, period), or change its limits."""
        now = time.time()
        existing = self.find(scope, subject_id, period)
        with self.db.engine.begin() as conn:
            if existing is None:
                conn.execute(
                    text(
                        f"INSERT INTO budgets ({_COLUMNS}) VALUES (:id, :scope, :subject, :period, :limit, :soft, "
                        ":now, :now)"
                    ),
                    {"id": new_id("budget"), "scope": scope, "subject": subject_id, "period": period}
                    | {"limit": limit_micros, "soft": soft_limit, "now": now},
                )
            else:
                conn.execute(
                    text(
                        "UPDATE budgets SET limit_micros = :limit, soft_limit = :soft, updated_at = :now WHERE id = :id"
                    ),
                    {"limit": limit_micros, "soft": soft_limit, "now": now, "id": existing.id},
                )
        found = self.find(scope, subject_id, period)
        assert found is not None
        return found

    def delete(self, budget_id: str) -> bool:
        with self.db.engine.begin() as conn:
            return bool(conn.execute(text("DELETE FROM budgets WHERE id = :id"), {"id": budget_id}).rowcount)

    def spent_since(self, budgets: Iterable[Budget], now: float) -> dict[str, int]:
        """Each budget's spend in its current window (micro-dollars), from the trace rollups
        (:class:`~lmdeck.tracing.signals.Signals`, exact for any window, no scan of the traces)."""
        out: dict[str, int] = {}
        column = {"key": "key_id", "team": "team_id"}
        signals = Signals(self.db)
        try:
            for budget in budgets:
                start, _ = budget.window(now)
                found = signals.totals(since=start, where={column[budget.scope]: budget.subject_id})
                out[budget.id] = sum(totals.cost_micros for totals in found)
        except DBAPIError as exc:
            log.warning("could not read past spend from the traces (%s); budgets start from zero", exc)
            return {}
        return out
