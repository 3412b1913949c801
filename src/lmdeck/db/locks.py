"""A named lock held until the transaction ends, on SQLite and PostgreSQL alike.

A check-then-write (is this the last admin key? which version does this label point at
now?) is only true if no other writer runs between the check and the write. Taking the
lock first makes writers of the same name wait for each other::

    with db.engine.begin() as conn:
        hold(conn, "registry.pointer:prompt/support-reply/production")
        current = read(conn)          # no other holder of this name writes until we commit
        write(conn, current)

PostgreSQL takes a transaction-scoped advisory lock on the name's 64-bit hash, so
different names do not wait for each other. SQLite has one writer at a time: a write
that changes nothing takes the database's write lock at once (a plain read would not,
and would let another writer in before this transaction's first write).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text


def _postgresql(conn: Connection, name: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})


def _sqlite(conn: Connection, name: str) -> None:
    conn.execute(text("UPDATE lmdeck_migrations SET name = name WHERE 1 = 0"))


#: How each dialect takes the lock.
LOCKS: dict[str, Callable[[Connection, str], None]] = {"postgresql": _postgresql, "sqlite": _sqlite}


def hold(conn: Connection, name: str) -> None:
    """Wait for, then hold, the lock ``name`` until ``conn``'s transaction commits or rolls back."""
    dialect = conn.dialect.name
    if dialect not in LOCKS:
        raise ValueError(f"no transaction lock for {dialect!r}: lmdeck runs on {', '.join(sorted(LOCKS))}")
    LOCKS[dialect](conn, name)
