"""Change notices between replicas through Redis pub/sub (``redis.url``, ``redis.pubsub``).

    changes = RedisChangeNotices(link)           # link: lmdeck.db.redis_link.RedisLink
    changes.subscribe("registry", poller.nudge)
    await changes.start()                        # SUBSCRIBE in a background task
    changes.publish("registry")                  # PUBLISH, off the caller's path
    await changes.stop()

A notice is a JSON message ``{"topic": "registry", "sender": "<this process's id>"}`` on the
channel ``link.key("changes")`` (``lmdeck:changes``); a process ignores its own. A notice from
another process nudges the topic's subscribers, which run the reload their poll already runs.

Publishing starts a task and returns: the PUBLISH runs under ``redis.timeout`` through
:meth:`RedisLink.run` (feature ``changes``), and a failure is logged by the link once per outage and
otherwise dropped (the other replicas' polling covers it). The subscriber reconnects with backoff
(0.1 s doubling up to ``redis.retry_interval``) when Redis goes away, logging the loss and the return
once each; every time it is subscribed (at start and after each reconnect) it nudges every subscriber,
since notices sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

from redis.asyncio.client import PubSub

from lmdeck.changes import ChangeNotices, Topic
from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable

log = logging.getLogger(__name__)

#: First wait before subscribing again after a failure (doubled each time, up to ``redis.retry_interval``).
FIRST_BACKOFF = 0.1
#: How long one read waits for a message before checking the connection again (seconds).
READ_WAIT = 1.0


class RedisChangeNotices(ChangeNotices):
    """:class:`~lmdeck.changes.ChangeNotices` carried by Redis pub/sub (see the module docstring)."""

    def __init__(self, link: RedisLink) -> None:
        super().__init__()
        self.link = link
        self.channel = link.key("changes")
        self.sender = uuid.uuid4().hex
        #: Set while subscribed (tests and start-up wait on it).
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._lost = False
        self._backoff = FIRST_BACKOFF

    def publish(self, topic: Topic) -> None:
        """Send the notice in a task of its own; returns at once (nothing outside an event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send(topic), name=f"change-notice-{topic}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, topic: Topic) -> None:
        message = json.dumps({"topic": topic, "sender": self.sender})
        try:
            await self.link.run("changes", lambda r: r.publish(self.channel, message))
        except SharedStateUnavailable:
            pass  # logged by the link (once per outage); polling carries the change
        except Exception:
            log.exception("publishing the change notice %r failed", topic)

    async def start(self) -> None:
        """Subscribe in a background task; waits up to ``redis.timeout`` for the subscription (never fails)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="change-notices")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listening.wait(), self.link.settings.timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._sends):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self) -> None:
        while True:
            pubsub = self.link.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._lost:
                    self._lost = True
                    log.warning(
                        "change notices from other replicas stopped (%s); they are picked up by polling "
                        "until Redis is back (retrying every %.1f s at most)",
                        f"{type(exc).__name__}: {exc}",
                        self.link.settings.retry_interval,
                    )
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, max(self.link.settings.retry_interval, FIRST_BACKOFF))

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=READ_WAIT)
            if message is None:
                continue
            if message["type"] == "subscribe":
                if self._lost:
                    self._lost = False
                    log.warning("change notices from other replicas are received again")
                self._backoff = FIRST_BACKOFF
                self.listening.set()
                self.deliver_all()  # whatever was published before now was not heard
                continue
            if message["type"] != "message":
                continue
            try:
                notice = json.loads(message["data"])
                topic, sender = notice["topic"], notice["sender"]
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a malformed change notice on %s: %r", self.channel, message["data"])
                continue
            if sender != self.sender and isinstance(topic, str):
                self.deliver(topic)


def change_notices(link: RedisLink | None) -> ChangeNotices:
    """Notices through Redis when there is a link with ``redis.pubsub`` on; else in-process (polling only)."""
    if link is None or not link.settings.pubsub:
        return ChangeNotices()
    return RedisChangeNotices(link)
