"""The live registry: the snapshot a gateway serves from, swapped when anything changes.

Changes made through this process's API call :meth:`LiveRegistry.refresh`
right after they commit, so an alias move is live at once, and announce it
(topic ``registry``, :mod:`lmdeck.changes`); changes made by another process
are picked up by a poll of the revision counter every
``settings.registry.poll_interval`` seconds, which their notice brings forward::

    live = LiveRegistry(db, poll_interval=2.0)   # loads the first snapshot
    await live.start()                           # begins polling
    live.snapshot.model("support-bot@production")
    await live.refresh()                         # after a change
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio

from lmdeck.changes import ChangeNotices
from lmdeck.db import Database
from lmdeck.polling import Poller
from lmdeck.registry.snapshot import RegistrySnapshot, load_snapshot
from lmdeck.registry.sql import revision

log = logging.getLogger(__name__)

Listener = Callable[[RegistrySnapshot], None]


class LiveRegistry:
    """Holds the current :class:`RegistrySnapshot`; a service started and stopped with the gateway."""

    def __init__(self, db: Database, *, poll_interval: float = 2.0) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.snapshot = load_snapshot(db)
        self._listeners: list[Listener] = []
        self._changes = ChangeNotices()
        self._lock = asyncio.Lock()
        self._poller = Poller(
            self._check,
            interval=poll_interval,
            name="registry-poll",
            log=log,
            failure=f"registry poll failed; retrying in {poll_interval:.1f}s",
        )

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce this process's changes through ``changes``, and check at once when another process announces."""
        self._changes = changes
        changes.subscribe("registry", self._poller.nudge)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` after each swap (on the event loop; it must not block)."""
        self._listeners.append(listener)

    def _swap(self, snap: RegistrySnapshot) -> None:
        self.snapshot = snap
        for listener in self._listeners:
            try:
                listener(snap)
            except Exception:
                log.exception("registry listener %r failed", listener)

    async def refresh(self) -> RegistrySnapshot:
        """Reload now (in a worker thread) and swap the new snapshot in; other processes are told to reload.

        Call it after committing a registry change.
        """
        snap = await self._reload()
        self._changes.publish("registry")
        return snap

    async def _reload(self) -> RegistrySnapshot:
        async with self._lock:
            previous = self.snapshot
            snap = await anyio.to_thread.run_sync(load_snapshot, self.db, previous)
            # The same revision read again keeps the old object, whose cached bundle hashes still hold.
            if snap.revision != previous.revision:
                self._swap(snap)
        return self.snapshot

    async def _check(self) -> None:
        """Refresh when another process changed the registry (its revision moved)."""
        current = await anyio.to_thread.run_sync(self._read_revision)
        if current != self.snapshot.revision:
            await self._reload()

    def _read_revision(self) -> int:
        with self.db.engine.connect() as conn:
            return revision(conn)

    async def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
