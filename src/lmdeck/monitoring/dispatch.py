"""Delivering the outbox: each due notification sent through its channel's notifier, retried with backoff.

    dispatcher = NotificationDispatcher(config, incidents, load_notifiers(), resolve)
    await dispatcher.drain(now)            # sends what is due; returns how many were delivered

A failed send is tried again after ``backoff_base_s * 2**(attempts - 1)`` seconds (capped at
``backoff_max_s``); after ``max_attempts`` attempts, or at once for a failure that cannot succeed on a
retry (unknown channel, a 4xx answer), the notification stays in ``alert_outbox`` with status ``dead``:
the dead-letter log (``GET /api/alerts/dead-letters``), from which an operator may queue it again.
Runs off the request path: in the alert service's loop, or awaited by ``POST /api/alerts/evaluate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio

from lmdeck.monitoring.incidents import IncidentStore, OutboxItem
from lmdeck.monitoring.notifiers.base import Notification, Notifier, NotifierError, NotifierRegistry, SecretResolver
from lmdeck.monitoring.store import AlertConfigStore
from lmdeck.protocol.alerts import ChannelSpec

log = logging.getLogger(__name__)


class NotificationDispatcher:
    """Sends due outbox items (see the module docs); one drain at a time."""

    def __init__(
        self,
        config: AlertConfigStore,
        incidents: IncidentStore,
        notifiers: NotifierRegistry,
        resolve: SecretResolver,
        *,
        max_attempts: int = 6,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.incidents = incidents
        self.notifiers = notifiers
        self.resolve = resolve
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self._lock = anyio.Lock()

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure."""
        return float(min(self.backoff_base_s * 2 ** max(attempts - 1, 0), self.backoff_max_s))

    def notifier(self, spec: ChannelSpec) -> Notifier:
        """The notifier of a channel (``ValueError`` naming the fix)."""
        return self.notifiers.create(spec, self.resolve)

    async def drain(self, now: float | None = None) -> int:
        """Send every notification due at ``now`` (default: the clock); how many were delivered."""
        async with self._lock:
            at = self.clock() if now is None else now
            due = await anyio.to_thread.run_sync(self.incidents.due, at)
            if not due:
                return 0
            channels = {c.name: c for c in await anyio.to_thread.run_sync(self.config.channels)}
            delivered = 0
            for item in due:
                delivered += await self._send(item, channels.get(item.channel), at)
            return delivered

    async def _send(self, item: OutboxItem, spec: ChannelSpec | None, at: float) -> int:
        attempts = item.attempts + 1
        try:
            if spec is None:
                raise NotifierError(
                    f"no notification channel named {item.channel!r}: add it, then retry", retryable=False
                )
            try:
                notifier = self.notifier(spec)
            except ValueError as exc:
                raise NotifierError(str(exc), retryable=False) from None
            try:
                await notifier.send(Notification(item.id, item.channel, item.event, item.payload))
            except NotifierError:
                raise
            except Exception as exc:  # a notifier's own bug must not stop the other deliveries
                log.exception("notifier of channel %r failed unexpectedly", item.channel)
                raise NotifierError(f"{type(exc).__name__}: {exc}") from None
        except NotifierError as exc:
            last = not exc.retryable or attempts >= self.max_attempts
            next_at = None if last else at + self.backoff(attempts)
            await anyio.to_thread.run_sync(self.incidents.mark_failed, item.id, str(exc), next_at)
            if last:
                log.warning(
                    "notification %s to %r dead-lettered after %d attempts: %s", item.id, item.channel, attempts, exc
                )
            else:
                log.info(
                    "notification %s to %r failed (attempt %d), retrying: %s", item.id, item.channel, attempts, exc
                )
            return 0
        await anyio.to_thread.run_sync(self.incidents.mark_sent, item.id, at)
        return 1
