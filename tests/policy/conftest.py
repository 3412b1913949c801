"""Fixtures: the test admin key and a started in-process gateway (``deck``); scratch stores come from ``database``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmdeck.db.redis_link import RedisLink
from lmdeck.testing.redis_server import redis_link
from policy.deck import ADMIN_ENV, ADMIN_KEY, Deck, policy_settings, started_deck


@pytest.fixture(autouse=True)
def _admin_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)


@pytest.fixture
async def deck(tmp_path: Path) -> AsyncIterator[Deck]:
    async with started_deck(policy_settings(tmp_path)) as started:
        yield started


@pytest.fixture
async def links(redis_url: str) -> AsyncIterator[list[RedisLink]]:
    """Two links to one real Redis, as two replicas have them."""
    made = [redis_link(redis_url), redis_link(redis_url)]
    yield made
    for link in made:
        await link.close()
