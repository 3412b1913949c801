"""Opening the store and running its migrations.

    >>> db = Database("sqlite:///:memory:")
    >>> db.migrate()  # doctest: +SKIP
    ['0001_traces', ...]

The engine is synchronous: lmdeck never touches it from the event loop. The
trace writer owns a thread; admin and read APIs go through
``anyio.to_thread``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from lmdeck.db.migrations import load_migration_modules, migrations


def _json_dumps(value: Any) -> str:
    # JSON columns hold traces' bodies: orjson is several times faster than the json module.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def psycopg_url(url: str) -> str:
    """``url`` with a bare ``postgresql://`` scheme made SQLAlchemy's psycopg 3 dialect; others as given.

    >>> psycopg_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """The SQL store behind lmdeck."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        #: The database lives in this process's memory: no other process can open it.
        self.in_memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if not self.in_memory:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            else:
                kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
            url = psycopg_url(url)
        self.engine: Engine = create_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def migrate(self) -> list[str]:
        load_migration_modules()
        with self.engine.begin() as conn:
            return migrations.apply(conn)

    def dispose(self) -> None:
        self.engine.dispose()
