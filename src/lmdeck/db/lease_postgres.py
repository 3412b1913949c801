"""A leader lease held as a PostgreSQL session advisory lock on a dedicated connection.

    lease = AdvisoryLease("postgresql://lmdeck@db/lmdeck", "lmdeck.leader")
    lease.try_acquire()    # True: this process is the leader while its connection lives

Processes on any number of machines sharing the store compete for it. The lock belongs to the
connection's session: when the process dies, or its connection drops, PostgreSQL frees it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from lmdeck.db.database import psycopg_url

log = logging.getLogger(__name__)


class AdvisoryLease:
    """``pg_try_advisory_lock`` on the 64-bit hash of ``name``, held by one connection of its own.

    While held, each ``try_acquire`` checks the connection still answers: a dropped connection
    has lost the lock, so the lease is given up and taken again only if it is free. Thread-safe.

    >>> lease = AdvisoryLease("postgresql://localhost/lmdeck", "lmdeck.leader")  # doctest: +SKIP
    """

    def __init__(self, url: str, name: str) -> None:
        url = psycopg_url(url)
        self.name = name
        # Its own engine without a pool: the lock lives and dies with this one connection.
        self._engine = create_engine(url, poolclass=NullPool)
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT 1"))
                    self._conn.commit()
                    return True
                except SQLAlchemyError:
                    log.warning("the leader lease's connection was lost; the lease with it")
                    self._drop()
            try:
                conn = self._engine.connect()
            except SQLAlchemyError as exc:
                log.warning("leader lease: cannot reach the store (%s); trying again later", exc)
                return False
            try:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))"), {"name": self.name}
                ).scalar()
                conn.commit()
            except SQLAlchemyError as exc:
                log.warning("leader lease: %s; trying again later", exc)
                conn.close()
                return False
            if not got:
                conn.close()
                return False
            self._conn = conn
            return True

    def release(self) -> None:
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))"), {"name": self.name})
                    conn.commit()
                except SQLAlchemyError:
                    pass  # closing the connection frees the lock all the same
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except SQLAlchemyError:
                pass

    def dispose(self) -> None:
        """Release the lease and close the engine."""
        self.release()
        self._engine.dispose()
