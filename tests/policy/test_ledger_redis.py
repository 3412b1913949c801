"""Shared budgets against a real redis-server: two ledgers stand for two replicas on one Redis."""

from __future__ import annotations

import asyncio
import signal

import pytest

from lmdeck.db.redis_link import RedisLink
from lmdeck.policy.budgets import Budget
from lmdeck.policy.ledger import BudgetAlerts, BudgetExceeded, Hold
from lmdeck.policy.ledger_redis import RedisBudgetLedger
from lmdeck.protocol import APIError
from lmdeck.testing.redis_server import RedisServer, redis_link

#: Generous bound on any one call while Redis is away (redis.timeout is 1 s by default).
NEVER_HANGS = 30.0
SUBJECT = [("key", "k1")]


def budget(limit: int, *, soft: float = 0.8, period: str = "month", budget_id: str = "budget_1") -> Budget:
    return Budget(budget_id, "key", "k1", period, limit, soft, 0.0, 0.0)  # type: ignore[arg-type]


def replicas(links: list[RedisLink], *budgets: Budget, **options: float) -> list[RedisBudgetLedger]:
    ledgers = [RedisBudgetLedger(link, BudgetAlerts(), **options) for link in links]  # type: ignore[arg-type]
    for ledger in ledgers:
        ledger.set_budgets(budgets)
    return ledgers


async def reserve_or_none(ledger: RedisBudgetLedger, amount: int) -> Hold | None:
    try:
        return await ledger.reserve(SUBJECT, amount)
    except BudgetExceeded:
        return None


async def test_200_concurrent_reserves_on_two_replicas_admit_exactly_the_budget(links: list[RedisLink]) -> None:
    ledgers = replicas(links, budget(1000))
    holds = await asyncio.gather(*(reserve_or_none(ledgers[i % 2], 10) for i in range(200)))
    admitted = [(i % 2, h) for i, h in enumerate(holds) if h is not None]
    assert len(admitted) == 100
    await asyncio.gather(*(ledgers[i].settle(h, 7) for i, h in admitted))
    for ledger in ledgers:
        await ledger.refresh()
        status = ledger.status("budget_1")
        assert status is not None
        assert (status["spent_micros"], status["reserved_micros"], status["remaining_micros"]) == (700, 0, 300)


async def test_settling_releases_the_hold_and_counts_the_real_cost_once(links: list[RedisLink]) -> None:
    ledger, other = replicas(links, budget(1000))
    hold = await ledger.reserve(SUBJECT, 600)
    with pytest.raises(BudgetExceeded) as refused:
        await other.reserve(SUBJECT, 401)
    assert refused.value.remaining == 400
    await ledger.settle(hold, 120)
    await ledger.settle(hold, 120)  # once only
    await other.refresh()
    status = other.status("budget_1")
    assert status is not None and (status["spent_micros"], status["reserved_micros"]) == (120, 0)
    assert (await other.reserve(SUBJECT, 880)).amounts["budget_1"][1] == 880


async def test_spend_beyond_a_hundred_million_dollars_stays_an_exact_integer(links: list[RedisLink]) -> None:
    ledger, other = replicas(links, budget(10**15))
    hold = await ledger.reserve(SUBJECT, 2 * 10**14 + 1)
    await ledger.settle(hold, 2 * 10**14 + 1)
    await other.refresh()
    for replica in (ledger, other):
        status = replica.status("budget_1")
        assert status is not None and status["spent_micros"] == 2 * 10**14 + 1


async def test_a_window_starts_from_the_stored_spend_once(links: list[RedisLink]) -> None:
    first, second = (RedisBudgetLedger(link) for link in links)
    first.set_budgets([budget(1000)], spent={"budget_1": 700})
    with pytest.raises(BudgetExceeded):
        await first.reserve(SUBJECT, 301)
    await first.settle(await first.reserve(SUBJECT, 100), 100)
    # A replica that read less from the store (or nothing) does not reseed the window Redis has.
    second.set_budgets([budget(1000)], spent={"budget_1": 0})
    with pytest.raises(BudgetExceeded) as refused:
        await second.reserve(SUBJECT, 201)
    assert refused.value.remaining == 200


async def test_a_hold_past_its_deadline_is_dropped_and_its_late_settle_releases_nothing(
    links: list[RedisLink],
) -> None:
    # hold_seconds=0: the hold lapses at once, as when its replica died and the deadline passed.
    dead, alive = RedisBudgetLedger(links[0], hold_seconds=0), RedisBudgetLedger(links[1])
    for ledger in (dead, alive):
        ledger.set_budgets([budget(1000)])
    lapsed = await dead.reserve(SUBJECT, 1000)
    hold = await alive.reserve(SUBJECT, 1000)
    await dead.settle(lapsed, 50)  # counts its cost, but does not release what the other replica holds
    await alive.refresh()
    status = alive.status("budget_1")
    assert status is not None and (status["spent_micros"], status["reserved_micros"]) == (50, 1000)
    await alive.settle(hold, 0)
    await alive.refresh()
    status = alive.status("budget_1")
    assert status is not None and status["reserved_micros"] == 0


async def test_every_budget_of_every_subject_is_checked_before_any_is_held(links: list[RedisLink]) -> None:
    team = Budget("budget_t", "team", "t1", "day", 100, 0.8, 0.0, 0.0)
    (ledger,) = replicas(links[:1], budget(1000), team)
    subjects = [("key", "k1"), ("team", "t1")]
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(subjects, 101)
    assert refused.value.budget.id == "budget_t"
    await ledger.refresh()
    status = ledger.status("budget_1")
    assert status is not None and status["reserved_micros"] == 0
    assert set((await ledger.reserve(subjects, 100)).amounts) == {"budget_1", "budget_t"}


async def test_alerts_are_emitted_once_per_window_across_replicas(links: list[RedisLink]) -> None:
    first, second = replicas(links, budget(1000, soft=0.5))
    await first.settle(await first.reserve(SUBJECT, 600), 600)
    await second.settle(await second.reserve(SUBJECT, 100), 100)
    await second.settle(await second.reserve(SUBJECT, 300), 300)
    await first.settle(await first.reserve(SUBJECT, 0), 0)
    kinds = [a.kind for ledger in (first, second) for a in ledger.alerts.recent]
    assert sorted(kinds) == ["exhausted", "soft_limit"]
    assert [a.kind for a in first.alerts.recent] == ["soft_limit"]
    assert [(a.kind, a.spent) for a in second.alerts.recent] == [("exhausted", 1000)]


async def test_a_closed_policy_refuses_with_a_503_when_redis_stops_answering(
    redis_server: RedisServer, redis_url: str
) -> None:
    link = redis_link(redis_url, retry_interval=60, timeout=1.0)  # budgets are closed by default
    ledger = RedisBudgetLedger(link)
    ledger.set_budgets([budget(1000)])
    hold = await ledger.reserve(SUBJECT, 10)
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)  # alive but silent: only the timeout ends the wait
    try:
        for _ in range(2):  # the first waits out redis.timeout, the second is refused at once
            with pytest.raises(APIError) as refused:
                await asyncio.wait_for(ledger.reserve(SUBJECT, 10), NEVER_HANGS)
            assert refused.value.status == 503 and refused.value.code == "shared_state_unavailable"
        await asyncio.wait_for(ledger.settle(hold, 10), NEVER_HANGS)  # dropped: the hold lapses later
        await asyncio.wait_for(ledger.refresh(), NEVER_HANGS)  # keeps what it last read
        status = ledger.status("budget_1")
        assert status is not None and status["reserved_micros"] == 10
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    await link.close()


async def test_an_open_policy_reserves_in_this_process_while_redis_is_down(
    redis_server: RedisServer, redis_url: str
) -> None:
    link = redis_link(redis_url, on_unavailable={"budgets": "open"})
    ledger = RedisBudgetLedger(link)
    ledger.set_budgets([budget(1000)], spent={"budget_1": 400})
    redis_server.kill()
    hold = await asyncio.wait_for(ledger.reserve(SUBJECT, 500), NEVER_HANGS)
    assert hold.fallback
    with pytest.raises(BudgetExceeded):  # the fallback knows the stored spend and its own hold
        await asyncio.wait_for(ledger.reserve(SUBJECT, 101), NEVER_HANGS)
    await asyncio.wait_for(ledger.settle(hold, 100), NEVER_HANGS)
    assert (await asyncio.wait_for(ledger.reserve(SUBJECT, 500), NEVER_HANGS)).fallback
    await link.close()
