"""RedisLink against a real redis-server: commands run, a dead Redis fails fast and by name, recovery is seen."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable
from lmdeck.settings import Settings
from lmdeck.testing.redis_server import RedisServer, redis_link


def test_no_url_means_no_link() -> None:
    assert RedisLink.from_settings(Settings()) is None


def test_a_command_runs_under_the_prefix(redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url, key_prefix="t1:")
        key = link.key("a", "b")
        assert key == "t1:a:b"
        await link.run("cache", lambda r: r.set(key, b"1"))
        assert await link.run("cache", lambda r: r.get(key)) == b"1"
        await link.close()

    asyncio.run(main())


def test_a_dead_redis_is_reported_once_then_skipped_until_the_retry_interval_then_recovered(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    registry = CollectorRegistry()

    async def main() -> None:
        link = redis_link(redis_url, registry=registry, retry_interval=5.0)
        link.clock = lambda: now[0]
        await link.run("rate_limits", lambda r: r.ping())
        redis_server.kill()
        with pytest.raises(SharedStateUnavailable) as first:
            await link.run("budgets", lambda r: r.ping())
        assert first.value.feature == "budgets" and not link.up
        # Inside the retry interval nothing is sent: the failure policy applies at once.
        with pytest.raises(SharedStateUnavailable, match="retry_interval"):
            await link.run("budgets", lambda r: r.ping())
        refusal = link.refusal(first.value)
        assert refusal.status == 503 and refusal.code == "shared_state_unavailable"
        assert "redis.on_unavailable.budgets" in refusal.message
        redis_server.start()
        now[0] += 6.0
        assert await link.run("budgets", lambda r: r.ping()) is True
        assert link.up
        await link.close()

    asyncio.run(main())
    errors = [r for r in caplog.records if "Redis is unavailable" in r.getMessage()]
    assert len(errors) == 1 and "'closed'" in errors[0].getMessage()
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    exposed = generate_latest(registry).decode()
    assert 'lmdeck_redis_unavailable_total{feature="budgets"} 2.0' in exposed
    assert "lmdeck_redis_up 1.0" in exposed


def test_a_password_in_the_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"redis\.password"):
        Settings.model_validate({"redis": {"url": "redis://:secret@127.0.0.1:6379/0"}})


def test_an_error_answer_fails_that_command_only(redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url)
        await link.run("cache", lambda r: r.set(link.key("text"), b"not a number"))
        with pytest.raises(SharedStateUnavailable, match="ResponseError"):
            await link.run("budgets", lambda r: r.incr(link.key("text")))
        assert link.up  # Redis answered: the other features keep using it
        assert await link.run("rate_limits", lambda r: r.ping()) is True
        await link.close()

    asyncio.run(main())
