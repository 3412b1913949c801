"""The live flags: an in-memory snapshot the request path reads, swapped whenever a flag changes.

Changes made through this process call :meth:`LiveFlags.refresh` right after they commit, so a
flip is seen by the next request; changes made by another process are picked up by a poll of
the history's revision every ``poll_interval`` seconds. Requests never read the database::

    live = LiveFlags(FlagStore(db), poll_interval=2.0)    # loads the first snapshot
    await live.start()                                     # begins polling
    live.snapshot.flags["support-v2"]                      # FlagSpec
    live.snapshot.kill_switches("support")                 # [FlagSpec, ...]
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import anyio

from lmdeck.changes import ChangeNotices
from lmdeck.delivery.flags.store import FlagStore
from lmdeck.polling import Poller
from lmdeck.protocol.flags import FlagSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlagSnapshot:
    """Every flag at one revision, and the kill switches of each route."""

    revision: int
    flags: dict[str, FlagSpec] = field(default_factory=dict)
    switches: dict[str, tuple[FlagSpec, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, revision: int, specs: list[FlagSpec]) -> FlagSnapshot:
        switches: dict[str, list[FlagSpec]] = {}
        for spec in specs:
            if spec.kill_switch:
                for route in spec.routes:
                    switches.setdefault(route, []).append(spec)
        return cls(revision, {s.name: s for s in specs}, {r: tuple(s) for r, s in switches.items()})

    def kill_switches(self, route: str) -> tuple[FlagSpec, ...]:
        """The kill-switch flags of ``route`` (empty when it has none)."""
        return self.switches.get(route, ())


def load_snapshot(store: FlagStore) -> FlagSnapshot:
    """Read every flag (blocking); the revision is read first, so a change racing the read is reloaded."""
    revision = store.revision()
    return FlagSnapshot.of(revision, [r.spec for r in store.all()])


class LiveFlags:
    """Holds the current :class:`FlagSnapshot`; a service started and stopped with the gateway."""

    def __init__(self, store: FlagStore, *, poll_interval: float = 2.0) -> None:
        self.store = store
        self.snapshot = load_snapshot(store)
        self._lock = asyncio.Lock()
        self._changes = ChangeNotices()
        self._poller = Poller(
            self._check,
            interval=poll_interval,
            name="flags-poll",
            log=log,
            failure=f"flag poll failed; retrying in {poll_interval:.1f}s",
        )

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce this process's flag changes through ``changes``; check at once when another process does."""
        self._changes = changes
        changes.subscribe("flags", self._poller.nudge)

    async def refresh(self) -> FlagSnapshot:
        """Reload now (in a worker thread) and swap the new snapshot in; call it after committing a flag change
        (other processes are told to reload)."""
        snap = await self._reload()
        self._changes.publish("flags")
        return snap

    async def _reload(self) -> FlagSnapshot:
        async with self._lock:
            self.snapshot = await anyio.to_thread.run_sync(load_snapshot, self.store)
        return self.snapshot

    async def _check(self) -> None:
        current = await anyio.to_thread.run_sync(self.store.revision)
        if current != self.snapshot.revision:
            await self._reload()

    async def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
