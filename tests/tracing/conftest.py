"""A migrated store on SQLite always, and on PostgreSQL when LMDECK_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.tracing.sql_store import SQLTraceStore

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "postgresql":
        server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
        if not server:
            pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    else:
        server = "sqlite://"
    with scratch_database(server) as url:
        db = Database(url)
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()


@pytest.fixture
def store(database: Database) -> SQLTraceStore:
    return SQLTraceStore(database)
