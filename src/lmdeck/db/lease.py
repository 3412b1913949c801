"""The leader lease: which one of several lmdeck processes on one store runs the background jobs.

    lease = leader_lease(settings.store_url, settings.data_dir)
    if lease.try_acquire():     # never blocks; True while this process holds the lease
        ...                     # run retention, alert evaluation, the release controller
    lease.release()

Whoever holds it keeps it until it releases it or dies: the operating system (a file lock) or
PostgreSQL (a session's advisory lock) frees it then, and the next ``try_acquire`` of another
process wins. One implementation per module, chosen by the store's dialect:
:class:`~lmdeck.db.lease_file.FileLease` for SQLite (the store is a file on this machine, so are
its processes), :class:`~lmdeck.db.lease_postgres.AdvisoryLease` for PostgreSQL (any machine).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from lmdeck.db.lease_file import FileLease
from lmdeck.db.lease_postgres import AdvisoryLease

#: What the lease is called: the file in the data directory, the advisory lock's name.
LEASE_NAME = "lmdeck.leader"


@runtime_checkable
class LeaderLease(Protocol):
    """A lease at most one process holds at a time (see the module docs)."""

    def try_acquire(self) -> bool:
        """Take the lease if it is free, without waiting; True when this process holds it (now or already).

        Blocking I/O (a file lock, a database round trip): call it off the event loop.
        """
        ...

    def release(self) -> None:
        """Give the lease up (nothing when not held); another process's next ``try_acquire`` may take it."""
        ...


def _file(store_url: str, data_dir: Path) -> LeaderLease:
    return FileLease(data_dir / f"{LEASE_NAME}.lock")


def _postgres(store_url: str, data_dir: Path) -> LeaderLease:
    return AdvisoryLease(store_url, LEASE_NAME)


#: The lease for each store dialect (the URL's scheme up to ``+`` or ``:``).
LEASES: dict[str, Callable[[str, Path], LeaderLease]] = {"sqlite": _file, "postgresql": _postgres}


def leader_lease(store_url: str, data_dir: Path) -> LeaderLease:
    """The lease for the store at ``store_url``; ``ValueError`` naming the supported stores for another."""
    dialect = store_url.split(":", 1)[0].split("+", 1)[0]
    if dialect == "postgres":
        dialect = "postgresql"
    make = LEASES.get(dialect)
    if make is None:
        raise ValueError(f"no leader lease for a {dialect!r} store: lmdeck runs on {', '.join(sorted(LEASES))}")
    return make(store_url, data_dir)
