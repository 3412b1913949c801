"""The trace store over the shared ``database`` fixture (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.tracing.sql_store import SQLTraceStore


@pytest.fixture
def store(database: Database) -> SQLTraceStore:
    return SQLTraceStore(database)
