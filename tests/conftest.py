"""Fixtures more than one test area uses.

``database``: a migrated scratch store, on SQLite always and on PostgreSQL when
LMDECK_TEST_POSTGRES_URL is set (``scripts/test-services.sh`` sets it)::

    def test_round_trip(database: Database) -> None:
        store = SQLTraceStore(database)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database

#: A deprecated API called by lmdeck's code fails the test (see lmdeck.testing.deprecations); the console's
#: browser tests share lmdeck.testing.browser's fixtures.
pytest_plugins = ["lmdeck.testing.deprecations", "lmdeck.testing.browser"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
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
