"""Change notices through a real redis-server: heard by the other process, not by the sender, and again after
Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import pytest

from lmdeck.changes import ChangeNotices, Topic
from lmdeck.db.redis_changes import RedisChangeNotices, change_notices
from lmdeck.testing.redis_server import RedisServer, redis_link

DEADLINE = 30.0


class Heard:
    """Counts the nudges per topic and wakes waiters on each."""

    def __init__(self, notices: ChangeNotices, *topics: Topic) -> None:
        self.counts: Counter[str] = Counter()
        self.event = asyncio.Event()
        for topic in topics:
            notices.subscribe(topic, lambda topic=topic: self._nudged(topic))

    def _nudged(self, topic: str) -> None:
        self.counts[topic] += 1
        self.event.set()

    def reset(self) -> None:
        self.counts.clear()
        self.event.clear()

    async def until(self, topic: str) -> None:
        async with asyncio.timeout(DEADLINE):
            while not self.counts[topic]:
                self.event.clear()
                await self.event.wait()


async def started(url: str, *topics: Topic, **redis: object) -> tuple[RedisChangeNotices, Heard]:
    notices = change_notices(redis_link(url, **redis))
    assert isinstance(notices, RedisChangeNotices)
    heard = Heard(notices, *topics)
    await notices.start()
    async with asyncio.timeout(DEADLINE):
        await notices.listening.wait()
    heard.reset()  # subscribing nudges everything once (notices sent before were not heard)
    return notices, heard


async def test_a_notice_nudges_the_other_process_and_not_the_sender(redis_url: str) -> None:
    a, heard_a = await started(redis_url, "registry", "policy")
    b, heard_b = await started(redis_url, "registry", "policy")
    try:
        a.publish("registry")
        await heard_b.until("registry")
        b.publish("policy")
        # Redis delivers in order: when a hears b's notice, it has already read (and dropped) its own.
        await heard_a.until("policy")
        assert heard_a.counts == {"policy": 1}
        assert heard_b.counts == {"registry": 1}
    finally:
        await a.stop()
        await b.stop()
        await a.link.close()
        await b.link.close()


async def test_the_subscriber_comes_back_after_redis_restarts(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = await started(redis_url, "flags", retry_interval=0.2)
    b, heard_b = await started(redis_url, "flags", retry_interval=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="lmdeck.db.redis_changes"):
            await asyncio.to_thread(redis_server.kill)
            async with asyncio.timeout(DEADLINE):
                while b.listening.is_set():
                    await asyncio.sleep(0.05)
            a.publish("flags")  # lost: Redis is away (dropped, never raised)
            await asyncio.to_thread(redis_server.start)
            async with asyncio.timeout(DEADLINE):
                await b.listening.wait()
            # Subscribing again nudged everything once: what was published meanwhile was missed.
            assert heard_b.counts["flags"] >= 1
            heard_b.reset()
            # a's link may still be inside its retry interval: publish until b hears one.
            async with asyncio.timeout(DEADLINE):
                while not heard_b.counts["flags"]:
                    a.publish("flags")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(heard_b.event.wait(), 0.5)
        lost = [r for r in caplog.records if "stopped" in r.getMessage()]
        back = [r for r in caplog.records if "received again" in r.getMessage()]
        assert len(lost) == 2 and len(back) == 2, [r.getMessage() for r in caplog.records]  # once each per subscriber
    finally:
        await a.stop()
        await b.stop()
        await a.link.close()
        await b.link.close()


async def test_pubsub_off_or_no_redis_means_polling_only(redis_url: str) -> None:
    link = redis_link(redis_url, pubsub=False)
    assert type(change_notices(link)) is ChangeNotices
    assert type(change_notices(None)) is ChangeNotices
    await link.close()
