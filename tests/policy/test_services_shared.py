"""With ``redis.url``, the policy services count rate limits and budgets in Redis, where another replica sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.gateway.routing.router import Router
from lmdeck.policy.budget_step import EnforceBudget
from lmdeck.policy.budgets import BudgetStore
from lmdeck.policy.ledger_redis import RedisBudgetLedger
from lmdeck.policy.ratelimit import Demand
from lmdeck.policy.ratelimit_redis import RedisRateLimiter
from lmdeck.policy.ratelimit_step import RateLimit
from lmdeck.policy.services import PolicyServices
from lmdeck.providers import ProviderContext
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.testing.redis_server import redis_link
from policy.deck import fake_providers, policy_settings


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


async def test_share_puts_limits_and_budgets_in_redis(tmp_path: Path, db: Database, redis_url: str) -> None:
    settings = policy_settings(tmp_path)
    policy = PolicyServices.build(settings, db, announce_admin_key=False)
    link, other = redis_link(redis_url), redis_link(redis_url)
    policy.share(link)
    assert isinstance(policy.limiter, RedisRateLimiter) and isinstance(policy.ledger, RedisBudgetLedger)
    assert policy.budgets.ledger is policy.ledger
    router = Router.from_settings(settings, fake_providers(), ProviderContext(settings, AiohttpTransport()))
    steps = {d.step.name: d.step for d in policy.steps(router, policy.keys)}
    rate_step, budget_step = steps["ratelimit"], steps["budget"]
    assert isinstance(rate_step, RateLimit) and rate_step.limiter is policy.limiter
    assert isinstance(budget_step, EnforceBudget) and budget_step.ledger is policy.ledger

    # What this gateway takes, another replica's limiter sees.
    demand = [Demand("key:k1:requests", 3, 2, "requests")]
    assert (await policy.limiter.acquire(demand)).admitted
    assert not (await RedisRateLimiter(other).acquire(demand)).admitted

    # A budget loaded from the store, spent through this gateway, read by another replica's ledger.
    budget = BudgetStore(db).put("key", "k1", "month", limit_micros=1000, soft_limit=0.8)
    await policy.budgets.reload()
    await policy.ledger.settle(await policy.ledger.reserve([("key", "k1")], 600), 250)
    shared = RedisBudgetLedger(other)
    shared.set_budgets([budget])
    await shared.refresh()
    seen = shared.status(budget.id)
    assert seen is not None and (seen["spent_micros"], seen["reserved_micros"]) == (250, 0)
    assert policy.budgets.status(budget.id)["spent_micros"] == 250
    await link.close()
    await other.close()
