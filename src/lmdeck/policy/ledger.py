"""The budget ledger: reserve a request's worst-case cost up front, settle the real cost after.

    ledger = MemoryBudgetLedger(alerts)
    ledger.set_budgets(budgets, spent={"budget_1": 12_500_000})
    hold = await ledger.reserve([("key", "key_1"), ("team", "team_1")], worst_case_micros)
    ...                                  # the request runs
    await ledger.settle(hold, actual_micros)

Every amount is whole micro-dollars (:mod:`lmdeck.money`), so what is spent, reserved and
left is exact: after any number of reservations settled, nothing stays reserved.

A reservation succeeds only if, for every budget of every subject, what is
spent plus what is reserved by requests still running plus this request's worst
case stays within the limit. Check and reservation happen together with no
suspension point between them, so concurrent requests cannot all pass the check
before any of them is counted: the ledger never admits more than fits.

The in-process ledger is exact for one process. Several gateway processes
share a budget through :class:`lmdeck.policy.ledger_redis.RedisBudgetLedger`,
behind the same :class:`BudgetLedger` protocol (atomic scripts in Redis).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from lmdeck.money import dollars, format_usd
from lmdeck.policy.budgets import Budget
from lmdeck.protocol.access import Scope

log = logging.getLogger(__name__)

Subject = tuple[Scope, str]
Clock = Callable[[], float]


class BudgetExceeded(Exception):
    """A reservation would go over a budget."""

    def __init__(self, budget: Budget, remaining: int, needed: int) -> None:
        super().__init__(
            f"the {budget.period} budget of {budget.scope} {budget.subject_id!r} is spent: "
            f"{format_usd(max(remaining, 0))} left of {format_usd(budget.limit_micros)}, "
            f"this request may cost up to {format_usd(needed)}"
        )
        self.budget = budget
        self.remaining = remaining
        self.needed = needed


@dataclass(frozen=True)
class BudgetAlert:
    """A budget crossed its soft limit, or was used up."""

    kind: Literal["soft_limit", "exhausted"]
    budget: Budget
    spent: int
    window_start: float
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "budget": self.budget.to_dict(),
            "spent": dollars(self.spent),
            "spent_micros": self.spent,
            "window_start": self.window_start,
            "at": self.at,
        }


class BudgetAlerts:
    """Where alerts go: a log line, the most recent ones in memory, and any listener added."""

    def __init__(self, keep: int = 200) -> None:
        self.recent: deque[BudgetAlert] = deque(maxlen=keep)
        self.listeners: list[Callable[[BudgetAlert], None]] = []

    def emit(self, alert: BudgetAlert) -> None:
        self.recent.append(alert)
        b = alert.budget
        log.warning(
            "budget alert (%s): %s %s %s budget at %s of %s",
            alert.kind,
            b.scope,
            b.subject_id,
            b.period,
            format_usd(alert.spent),
            format_usd(b.limit_micros),
        )
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:
                log.exception("a budget alert listener failed")


@dataclass
class Hold:
    """What a running request has reserved, per budget and window."""

    amounts: dict[str, tuple[float, int]] = field(default_factory=dict)  # budget id -> (window start, micros)
    settled: bool = False
    #: The name a shared ledger keeps the hold under (None in the in-process ledger).
    id: str | None = None
    #: Taken by a ledger's in-process fallback (its shared store was unavailable): settled there.
    fallback: bool = False


@dataclass
class _Window:
    start: float
    end: float | None = None
    spent: int = 0
    reserved: int = 0
    alerted: set[str] = field(default_factory=set)


class BudgetLedger(Protocol):
    def applies(self, subjects: Sequence[Subject]) -> bool: ...

    async def reserve(self, subjects: Sequence[Subject], amount: int) -> Hold: ...

    async def settle(self, hold: Hold, actual: int) -> None: ...

    def status(self, budget_id: str) -> dict[str, Any] | None: ...


class BudgetBook(BudgetLedger, Protocol):
    """A ledger as :class:`~lmdeck.policy.budget_admin.BudgetAdmin` drives it: budgets in, status out."""

    clock: Clock

    def set_budgets(self, budgets: Iterable[Budget], spent: dict[str, int] | None = None) -> None: ...

    def budgets(self) -> list[Budget]: ...

    async def refresh(self) -> None: ...


class MemoryBudgetLedger:
    """The in-process ledger: exact within one process."""

    def __init__(self, alerts: BudgetAlerts | None = None, *, clock: Clock = time.time) -> None:
        self.alerts = alerts or BudgetAlerts()
        self.clock = clock
        self._budgets: dict[str, Budget] = {}
        self._by_subject: dict[Subject, list[Budget]] = {}
        self._windows: dict[str, _Window] = {}

    def set_budgets(self, budgets: Iterable[Budget], spent: dict[str, int] | None = None) -> None:
        """Replace the budget definitions; spend already counted for a kept budget stays."""
        now = self.clock()
        self._budgets = {b.id: b for b in budgets}
        by_subject: dict[Subject, list[Budget]] = {}
        for budget in self._budgets.values():
            by_subject.setdefault(budget.subject, []).append(budget)
            if spent is not None and budget.id in spent and budget.id not in self._windows:
                start, end = budget.window(now)
                self._windows[budget.id] = _Window(start, end, spent=spent[budget.id])
        self._by_subject = by_subject
        for gone in set(self._windows) - set(self._budgets):
            del self._windows[gone]

    def budgets(self) -> list[Budget]:
        return list(self._budgets.values())

    async def refresh(self) -> None:
        """Nothing to read: this process's counts are the whole truth."""

    def applies(self, subjects: Sequence[Subject]) -> bool:
        return any(s in self._by_subject for s in subjects)

    def _window(self, budget: Budget, now: float) -> _Window:
        window = self._windows.get(budget.id)
        if window is not None and window.start <= now and (window.end is None or now < window.end):
            return window
        start, end = budget.window(now)
        if window is None or window.start != start:
            window = self._windows[budget.id] = _Window(start, end)
        window.end = end
        return window

    async def reserve(self, subjects: Sequence[Subject], amount: int) -> Hold:
        """Hold ``amount`` micro-dollars against every budget of ``subjects``; :class:`BudgetExceeded` if one lacks it."""
        # No await in here: the check and the reservation are one step for the event loop.
        now = self.clock()
        budgets = [b for s in subjects for b in self._by_subject.get(s, ())]
        windows = [self._window(b, now) for b in budgets]
        for budget, window in zip(budgets, windows, strict=True):
            remaining = budget.limit_micros - window.spent - window.reserved
            if amount > remaining:
                raise BudgetExceeded(budget, remaining, amount)
        hold = Hold()
        for budget, window in zip(budgets, windows, strict=True):
            window.reserved += amount
            hold.amounts[budget.id] = (window.start, amount)
        return hold

    async def settle(self, hold: Hold, actual: int) -> None:
        """Release ``hold`` and count ``actual`` micro-dollars as spent (once; a second call does nothing)."""
        if hold.settled:
            return
        hold.settled = True
        now = self.clock()
        for budget_id, (start, reserved) in hold.amounts.items():
            budget = self._budgets.get(budget_id)
            window = self._windows.get(budget_id)
            if window is not None and window.start == start:
                window.reserved -= reserved
            if budget is None:
                continue
            window = self._window(budget, now)
            window.spent += actual
            self._check_alerts(budget, window, now)

    def _check_alerts(self, budget: Budget, window: _Window, now: float) -> None:
        for kind, threshold in (("soft_limit", budget.soft_limit), ("exhausted", 1.0)):
            # Compared exactly: the threshold share is read by its decimal form.
            if kind not in window.alerted and window.spent >= Decimal(budget.limit_micros) * Decimal(str(threshold)):
                window.alerted.add(kind)
                self.alerts.emit(BudgetAlert(kind, budget, window.spent, window.start, now))  # type: ignore[arg-type]

    def status(self, budget_id: str) -> dict[str, Any] | None:
        budget = self._budgets.get(budget_id)
        if budget is None:
            return None
        now = self.clock()
        window = self._window(budget, now)
        start, end = budget.window(now)
        remaining = budget.limit_micros - window.spent - window.reserved
        return {
            **budget.to_dict(),
            "spent": dollars(window.spent),
            "reserved": dollars(window.reserved),
            "remaining": dollars(remaining),
            "spent_micros": window.spent,
            "reserved_micros": window.reserved,
            "remaining_micros": remaining,
            "window_start": start,
            "window_end": end,
        }
