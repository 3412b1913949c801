"""A scratch database for one test: a fresh, empty database that is dropped afterwards.

    with scratch_database(os.environ["LMDECK_TEST_POSTGRES_URL"]) as url:
        db = Database(url); db.migrate()

For a PostgreSQL URL it creates ``lmdeck_scratch_<random>`` on that server and
drops it on exit; for a SQLite URL it yields an in-memory database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    if server_url.startswith("sqlite"):
        yield "sqlite:///:memory:"
        return
    url = make_url(server_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"lmdeck_scratch_{os.urandom(6).hex()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
