"""A small in-process event bus: what happens to releases (and flags), for whoever listens.

Monitoring subscribes to it (an alert on a rollback, a chart annotation); delivery never imports
monitoring. A subscriber is called synchronously in the publisher's thread and must not block; one
that raises is logged and skipped, never failing the transition that published::

    bus = DeliveryEvents()
    bus.subscribe(lambda event: print(event.action, event.release))
    bus.publish(ReleaseEvent(release="reply-v3", action="rolled_back", ...))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from lmdeck.protocol.delivery import ReleaseEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[ReleaseEvent], None]


class DeliveryEvents:
    """Subscribers told about every release transition (``started``, ``step``, ``promoted``, ...)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: ReleaseEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("a release event subscriber failed on %s %s", event.action, event.release)
