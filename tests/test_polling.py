"""The poller behind every service that picks up changes made by other processes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lmdeck.polling import Poller

log = logging.getLogger("lmdeck.tests.polling")


async def test_a_failed_tick_is_logged_and_polling_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    third = asyncio.Event()

    async def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            third.set()
        if calls == 1:
            raise RuntimeError("store away")

    poller = Poller(tick, interval=0.001, name="test-poll", log=log, failure="reload failed; retrying")
    with caplog.at_level(logging.ERROR, logger=log.name):
        poller.start()
        poller.start()  # a second start keeps the one task
        await asyncio.wait_for(third.wait(), 10)
        await poller.stop()
    stopped_at = calls
    await asyncio.sleep(0.01)
    assert calls == stopped_at, "the task went on after stop()"
    [record] = [r for r in caplog.records if r.name == log.name]
    assert record.getMessage() == "reload failed; retrying" and record.exc_info is not None
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test-poll"]


async def test_stop_before_start_is_a_no_op() -> None:
    async def tick() -> None:
        raise AssertionError("never called")

    await Poller(tick, interval=60, name="idle", log=log, failure="x").stop()


async def test_a_nudge_ticks_at_once_and_nudges_during_a_tick_fold_into_one_more() -> None:
    ticks = 0
    ticked = asyncio.Event()
    release = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        ticked.set()
        await release.wait()

    poller = Poller(tick, interval=3600, name="nudged", log=log, failure="x")
    poller.nudge()  # before start: remembered, ticks at once on start
    poller.start()
    poller.nudge()
    await asyncio.wait_for(ticked.wait(), 10)
    ticked.clear()
    poller.nudge()
    poller.nudge()  # both arrive while the first tick runs
    release.set()
    await asyncio.wait_for(ticked.wait(), 10)
    for _ in range(20):
        await asyncio.sleep(0)
    assert ticks == 2
    await poller.stop()
