"""Fixtures more than one test area uses.

``database``: a migrated scratch store, on SQLite always and on PostgreSQL when
LMDECK_TEST_POSTGRES_URL is set (``scripts/test-services.sh`` sets it)::

    def test_round_trip(database: Database) -> None:
        store = SQLTraceStore(database)

``redis_url``: a real ``redis-server`` on loopback (one per session), emptied for each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.testing.ray_head import RayHead, RayUnavailable
from lmdeck.testing.redis_server import RedisServer, redis_available, start_redis

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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` for the session (``make test`` installs Debian's package)."""
    if not redis_available():
        pytest.skip("redis-server is not installed (scripts/test-services.sh installs it)")
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test (started again if a test killed it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The Jobs API address of one real one-node Ray head for the session (skips when Ray cannot start here)."""
    try:
        head = RayHead.start(240.0)
    except RayUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield head.address
    finally:
        head.stop()
