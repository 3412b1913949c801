"""Budgets every replica shares: the reservations of :mod:`lmdeck.policy.ledger`, kept in Redis.

    ledger = RedisBudgetLedger(link, alerts)         # link: lmdeck.db.redis_link.RedisLink
    ledger.set_budgets(budgets, spent={"budget_1": 12_500_000})   # spend read from the store
    hold = await ledger.reserve([("key", "key_1"), ("team", "team_1")], worst_case_micros)
    ...
    await ledger.settle(hold, actual_micros)
    await ledger.refresh()                           # status() reads what the last script saw

The semantics are :class:`~lmdeck.policy.ledger.MemoryBudgetLedger`'s, in whole micro-dollars: a
reservation succeeds only if every budget of every subject has room for its worst case beside what
is spent and what the running requests of EVERY replica hold; settling releases the hold and counts
the real cost in the current window. Reserve and settle are each one Lua script, so replicas never
admit more than fits.

Each budget window is the hash ``<prefix>budget:<id>:<window start>`` (``spent``, ``reserved``,
``hold:<id>`` per running request, ``alerted:<kind>``) beside the sorted set ``…:holds`` of hold
ids scored by their deadline (Redis time + ``hold_seconds``): a hold whose replica died is dropped
by the next script that touches the window. Day and month windows expire a day after they end.

The durable store stays the record: a window Redis does not have yet starts from the spend
:class:`~lmdeck.policy.budget_admin.BudgetAdmin` read from the traces (the seed of
:meth:`set_budgets`); a window Redis has is never reseeded. Alerts (soft limit, exhausted) are
emitted once per window across replicas (``HSETNX`` on the window decides which replica emits).

:meth:`status` is synchronous: it answers from what the last script returned, kept fresh by
:meth:`refresh`, which the policy poller calls. While Redis is unavailable
``redis.on_unavailable.budgets`` applies: ``closed`` (the default) refuses with the link's 503,
``open`` reserves in this process's own :class:`MemoryBudgetLedger`. A settle Redis cannot take is
dropped (its hold lapses at its deadline); the trace store still has the cost.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable
from lmdeck.money import dollars
from lmdeck.policy.budgets import Budget
from lmdeck.policy.ledger import BudgetAlert, BudgetAlerts, BudgetExceeded, Clock, Hold, MemoryBudgetLedger, Subject

log = logging.getLogger(__name__)

#: Seconds a hold is kept for a request still running: past it, its replica is taken for dead.
HOLD_SECONDS = 900.0

#: Seconds a day or month window outlives its end.
WINDOW_GRACE = 86_400

# Shared by the scripts. Amounts stay strings on their way to HINCRBY: Lua would print a large
# number in exponent form, which Redis refuses as an integer.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function open_window(w, z, seed, expire_at)
  if redis.call('EXISTS', w) == 0 then
    redis.call('HSET', w, 'spent', seed, 'reserved', 0)
    if tonumber(expire_at) > 0 then redis.call('EXPIREAT', w, expire_at) end
  end
end
local function release(w, id)
  local held = redis.call('HGET', w, 'hold:' .. id)
  if held then
    if held ~= '0' then redis.call('HINCRBY', w, 'reserved', '-' .. held) end
    redis.call('HDEL', w, 'hold:' .. id)
  end
end
local function drop_expired(w, z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(gone) do release(w, id) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
"""

# KEYS: window, holds of each budget. ARGV: amount, hold id, hold seconds, then limit, seed,
# expire_at of each budget. Returns {refused index (0: held), spent, reserved of each budget}.
RESERVE = (
    _PRELUDE
    + """
local n = #KEYS / 2
local out = {0}
for i = 1, n do
  local w, z, base = KEYS[2 * i - 1], KEYS[2 * i], 3 + 3 * (i - 1)
  open_window(w, z, ARGV[base + 2], ARGV[base + 3])
  drop_expired(w, z)
  local spent = tonumber(redis.call('HGET', w, 'spent'))
  local reserved = tonumber(redis.call('HGET', w, 'reserved'))
  if out[1] == 0 and tonumber(ARGV[1]) > tonumber(ARGV[base + 1]) - spent - reserved then out[1] = i end
end
for i = 1, n do
  local w, z, base = KEYS[2 * i - 1], KEYS[2 * i], 3 + 3 * (i - 1)
  if out[1] == 0 then
    redis.call('HINCRBY', w, 'reserved', ARGV[1])
    redis.call('HSET', w, 'hold:' .. ARGV[2], ARGV[1])
    redis.call('ZADD', z, now + tonumber(ARGV[3]), ARGV[2])
    if tonumber(ARGV[base + 3]) > 0 then redis.call('EXPIREAT', z, ARGV[base + 3]) end
  end
  out[2 * i] = redis.call('HGET', w, 'spent')
  out[2 * i + 1] = redis.call('HGET', w, 'reserved')
end
return out
"""
)

# KEYS: hold's window, its holds, current window, its holds, for each budget. ARGV: hold id, actual,
# then seed, expire_at, soft threshold, limit of each budget.
# Returns {spent, reserved, alerts (1: soft limit, 2: exhausted, 3: both)} of each budget.
SETTLE = (
    _PRELUDE
    + """
local out = {}
for i = 1, #KEYS / 4 do
  local w0, z0, w1, z1, base = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i], 2 + 4 * (i - 1)
  release(w0, ARGV[1])
  redis.call('ZREM', z0, ARGV[1])
  open_window(w1, z1, ARGV[base + 1], ARGV[base + 2])
  drop_expired(w1, z1)
  local spent = redis.call('HINCRBY', w1, 'spent', ARGV[2])
  local fired = 0
  if spent >= tonumber(ARGV[base + 3]) and redis.call('HSETNX', w1, 'alerted:soft_limit', 1) == 1 then
    fired = fired + 1
  end
  if spent >= tonumber(ARGV[base + 4]) and redis.call('HSETNX', w1, 'alerted:exhausted', 1) == 1 then
    fired = fired + 2
  end
  out[3 * i - 2] = redis.call('HGET', w1, 'spent')  -- the stored integer as a string (a Lua number may print as 1e+14)
  out[3 * i - 1] = redis.call('HGET', w1, 'reserved')
  out[3 * i] = fired
end
return out
"""
)

# KEYS: window, holds of each budget. ARGV: seed, expire_at of each. Returns {spent, reserved} of each.
READ = (
    _PRELUDE
    + """
local out = {}
for i = 1, #KEYS / 2 do
  local w, z = KEYS[2 * i - 1], KEYS[2 * i]
  open_window(w, z, ARGV[2 * i - 1], ARGV[2 * i])
  drop_expired(w, z)
  out[2 * i - 1] = redis.call('HGET', w, 'spent')
  out[2 * i] = redis.call('HGET', w, 'reserved')
end
return out
"""
)


class RedisBudgetLedger:
    """Budget reservations in the Redis replicas share (see the module docstring).

    ``hold_seconds``: how long a reservation outlives a replica that died holding it.
    ``fallback``: the in-process ledger an ``open`` failure policy reserves in while Redis is away.
    """

    def __init__(
        self,
        link: RedisLink,
        alerts: BudgetAlerts | None = None,
        *,
        clock: Clock = time.time,
        hold_seconds: float = HOLD_SECONDS,
        fallback: MemoryBudgetLedger | None = None,
    ) -> None:
        self.link = link
        self.alerts = alerts or BudgetAlerts()
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.fallback = fallback or MemoryBudgetLedger(self.alerts, clock=clock)
        self._budgets: dict[str, Budget] = {}
        self._by_subject: dict[Subject, list[Budget]] = {}
        self._seeds: dict[str, tuple[float, int]] = {}  # budget id -> (window start, spent read from the store)
        self._seen: dict[str, tuple[float, int, int]] = {}  # budget id -> (window start, spent, reserved)
        self._reserve = link.script(RESERVE)
        self._settle = link.script(SETTLE)
        self._read = link.script(READ)

    def set_budgets(self, budgets: Iterable[Budget], spent: dict[str, int] | None = None) -> None:
        """Replace the budget definitions; ``spent`` seeds windows Redis has not opened yet."""
        budgets = list(budgets)
        now = self.clock()
        self._budgets = {b.id: b for b in budgets}
        by_subject: dict[Subject, list[Budget]] = {}
        for budget in budgets:
            by_subject.setdefault(budget.subject, []).append(budget)
            if spent is not None and budget.id in spent and budget.id not in self._seeds:
                self._seeds[budget.id] = (budget.window(now)[0], spent[budget.id])
        self._by_subject = by_subject
        for gone in set(self._seeds) - set(self._budgets):
            del self._seeds[gone]
        for gone in set(self._seen) - set(self._budgets):
            del self._seen[gone]
        self.fallback.set_budgets(budgets, spent)

    def budgets(self) -> list[Budget]:
        return list(self._budgets.values())

    def applies(self, subjects: Sequence[Subject]) -> bool:
        return any(s in self._by_subject for s in subjects)

    def _window_keys(self, budget: Budget, start: float) -> list[str]:
        window = self.link.key("budget", budget.id, str(int(start)))
        return [window, window + ":holds"]

    def _opening(self, budget: Budget, now: float) -> tuple[float, list[str], list[int]]:
        """The window start, keys and (seed, expire_at) of ``budget``'s window at ``now``."""
        start, end = budget.window(now)
        seeded = self._seeds.get(budget.id)
        seed = seeded[1] if seeded is not None and seeded[0] == start else 0
        expire_at = math.ceil(end) + WINDOW_GRACE if end is not None else 0
        return start, self._window_keys(budget, start), [seed, expire_at]

    async def reserve(self, subjects: Sequence[Subject], amount: int) -> Hold:
        """Hold ``amount`` micro-dollars against every budget of ``subjects``; :class:`BudgetExceeded` if one
        lacks it; the link's 503 (:class:`~lmdeck.protocol.APIError`) when Redis is away and the policy is closed."""
        budgets = [b for s in subjects for b in self._by_subject.get(s, ())]
        if not budgets:
            return Hold()
        now = self.clock()
        hold_id = secrets.token_hex(8)
        keys: list[str] = []
        args: list[str | int | float] = [amount, hold_id, self.hold_seconds]
        starts: list[float] = []
        for budget in budgets:
            start, window_keys, opening = self._opening(budget, now)
            starts.append(start)
            keys += window_keys
            args += [budget.limit_micros, *opening]
        try:
            reply = await self.link.run("budgets", lambda r: self._reserve(keys=keys, args=args, client=r))
        except SharedStateUnavailable as down:
            if self.link.policy("budgets") == "closed":
                raise self.link.refusal(down) from down
            hold = await self.fallback.reserve(subjects, amount)
            hold.fallback = True
            return hold
        refused = int(reply[0])
        for i, (budget, start) in enumerate(zip(budgets, starts, strict=True)):
            self._seen[budget.id] = (start, int(reply[2 * i + 1]), int(reply[2 * i + 2]))
        if refused:
            budget = budgets[refused - 1]
            _, spent, reserved = self._seen[budget.id]
            raise BudgetExceeded(budget, budget.limit_micros - spent - reserved, amount)
        return Hold({b.id: (start, amount) for b, start in zip(budgets, starts, strict=True)}, id=hold_id)

    async def settle(self, hold: Hold, actual: int) -> None:
        """Release ``hold`` and count ``actual`` micro-dollars as spent (once; a second call does nothing)."""
        if hold.fallback:
            await self.fallback.settle(hold, actual)
            return
        if hold.settled or hold.id is None:
            hold.settled = True
            return
        hold.settled = True
        now = self.clock()
        hold_id = hold.id
        budgets: list[tuple[Budget, float]] = []
        keys: list[str] = []
        args: list[str | int] = [hold_id, actual]
        for budget_id, (held_start, _) in hold.amounts.items():
            budget = self._budgets.get(budget_id)
            if budget is None:
                continue  # deleted meanwhile: its window is no longer read
            start, window_keys, opening = self._opening(budget, now)
            budgets.append((budget, start))
            keys += self._window_keys(budget, held_start) + window_keys
            args += [*opening, _threshold(budget), budget.limit_micros]
        if not budgets:
            return
        try:
            reply = await self.link.run("budgets", lambda r: self._settle(keys=keys, args=args, client=r))
        except SharedStateUnavailable as down:
            log.debug("budget settle dropped (the hold lapses at its deadline): %s", down)
            return
        for i, (budget, start) in enumerate(budgets):
            spent, reserved, fired = int(reply[3 * i]), int(reply[3 * i + 1]), int(reply[3 * i + 2])
            self._seen[budget.id] = (start, spent, reserved)
            for bit, kind in ((1, "soft_limit"), (2, "exhausted")):
                if fired & bit:
                    self.alerts.emit(BudgetAlert(kind, budget, spent, start, now))  # type: ignore[arg-type]

    async def refresh(self) -> None:
        """Read every budget's current window (dropping lapsed holds) for :meth:`status`; keeps the last
        values while Redis is away."""
        budgets = self.budgets()
        if not budgets:
            return
        now = self.clock()
        keys: list[str] = []
        args: list[int] = []
        starts: list[float] = []
        for budget in budgets:
            start, window_keys, opening = self._opening(budget, now)
            starts.append(start)
            keys += window_keys
            args += opening
        try:
            reply = await self.link.run("budgets", lambda r: self._read(keys=keys, args=args, client=r))
        except SharedStateUnavailable:
            return
        for i, (budget, start) in enumerate(zip(budgets, starts, strict=True)):
            self._seen[budget.id] = (start, int(reply[2 * i]), int(reply[2 * i + 1]))

    def status(self, budget_id: str) -> dict[str, Any] | None:
        """The budget with its window's spent / reserved / remaining as last read from Redis; None if unknown."""
        budget = self._budgets.get(budget_id)
        if budget is None:
            return None
        start, end = budget.window(self.clock())
        seen = self._seen.get(budget_id)
        seeded = self._seeds.get(budget_id)
        if seen is not None and seen[0] == start:
            spent, reserved = seen[1], seen[2]
        else:
            spent, reserved = (seeded[1] if seeded is not None and seeded[0] == start else 0), 0
        remaining = budget.limit_micros - spent - reserved
        return {
            **budget.to_dict(),
            "spent": dollars(spent),
            "reserved": dollars(reserved),
            "remaining": dollars(remaining),
            "spent_micros": spent,
            "reserved_micros": reserved,
            "remaining_micros": remaining,
            "window_start": start,
            "window_end": end,
        }


def _threshold(budget: Budget) -> int:
    """The least whole spend at or past the soft limit (compared exactly, as the in-process ledger does)."""
    return math.ceil(Decimal(budget.limit_micros) * Decimal(str(budget.soft_limit)))
