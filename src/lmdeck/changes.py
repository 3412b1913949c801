"""Change notices: a process that changed shared state says so, and the others reload at once.

Every service that picks up other processes' changes polls (:mod:`lmdeck.polling`). A notice
only makes that poll come early: a service publishes its topic after a local commit, and
subscribes its poller's :meth:`~lmdeck.polling.Poller.nudge` to the topic, so the tick it
already runs (read the revision, reload when it moved) is the only code path::

    changes = ChangeNotices()                        # in-process: reaches no other process
    changes.subscribe("registry", poller.nudge)      # called when ANOTHER process publishes "registry"
    changes.publish("registry")                      # after this process committed a registry change

:class:`ChangeNotices` itself publishes nowhere: other processes see the change at their next
poll. :class:`lmdeck.db.redis_changes.RedisChangeNotices` carries notices between processes
through Redis pub/sub (``redis.url``, ``redis.pubsub``). Publishing never blocks nor raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, get_args

log = logging.getLogger(__name__)

#: What changed: each is reloaded by one service's poll.
Topic = Literal["registry", "policy", "flags", "delivery", "experiments", "online_evals"]
TOPICS: tuple[Topic, ...] = get_args(Topic)

#: Called on the event loop when another process announced a change; must not block (a poller's ``nudge``).
Nudge = Callable[[], None]


class ChangeNotices:
    """Topics and their subscribers; this in-process form publishes to nobody (see the module docstring).

    Also a service of the gateway (``start``/``stop``), so the Redis form can replace it one for one.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Nudge]] = {}

    def subscribe(self, topic: Topic, nudge: Nudge) -> None:
        """Call ``nudge()`` whenever another process publishes ``topic``."""
        self._subscribers.setdefault(topic, []).append(nudge)

    def publish(self, topic: Topic) -> None:
        """Tell other processes ``topic`` changed (committed already). In-process: nothing to tell."""
        return None

    def deliver(self, topic: str) -> None:
        """Nudge the subscribers of ``topic`` (a notice came in); an unknown topic is ignored."""
        for nudge in self._subscribers.get(topic, ()):
            try:
                nudge()
            except Exception:
                log.exception("change notice subscriber %r of %r failed", nudge, topic)

    def deliver_all(self) -> None:
        """Nudge every subscriber (notices may have been missed, e.g. while Redis was away)."""
        for topic in list(self._subscribers):
            self.deliver(topic)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
