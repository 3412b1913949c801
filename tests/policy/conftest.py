"""Fixtures: the test admin key, a started in-process gateway (``deck``), and scratch stores (``database``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from policy.deck import ADMIN_ENV, ADMIN_KEY, Deck, policy_settings, started_deck


@pytest.fixture(autouse=True)
def _admin_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)


@pytest.fixture
async def deck(tmp_path: Path) -> AsyncIterator[Deck]:
    async with started_deck(policy_settings(tmp_path)) as started:
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated scratch store: SQLite always, PostgreSQL when LMDECK_TEST_POSTGRES_URL is set."""
    server = "sqlite://" if request.param == "sqlite" else os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    with scratch_database(server) as url:
        db = Database(url)
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()
