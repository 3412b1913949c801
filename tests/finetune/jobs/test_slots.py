"""Training slots: ``fine_tuning.max_concurrent_jobs`` workers at once, the others wait in ``queued``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lmdeck.finetune.jobs.slots import TrainingSlots
from lmdeck.settings import FineTuningSettings, Settings

from .conftest import StartDeck, count_rows
from .fakes import FakeRunner
from .test_jobs_api import JOBS, final, until


async def test_slots_are_handed_to_waiters_in_order() -> None:
    slots = TrainingSlots(1)
    await slots.acquire()
    order: list[str] = []

    async def job(name: str) -> None:
        async with slots.held():
            order.append(name)

    waiting = [asyncio.create_task(job(name)) for name in ("b", "c")]
    while len(slots._waiters) < 2:
        await asyncio.sleep(0)
    assert order == [] and not slots.free
    slots.release()
    await asyncio.gather(*waiting)
    assert order == ["b", "c"] and slots.running == 0 and slots.free


async def test_a_cancelled_waiter_leaves_the_line_and_a_forced_slot_never_waits() -> None:
    slots = TrainingSlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    while not slots._waiters:
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots._waiters == []
    await slots.acquire(force=True)  # a worker found running after a restart
    assert slots.running == 2
    slots.release()
    slots.release()
    assert slots.running == 0 and slots.free
    with pytest.raises(ValueError, match="max_concurrent_jobs"):
        TrainingSlots(0)


async def test_a_second_job_waits_queued_until_the_first_one_trains_to_its_end(
    settings: Settings, start_deck: StartDeck, adapter_cache: Any
) -> None:
    runner = FakeRunner(adapter_cache)
    runner.hold.clear()  # the first worker waits before its last step
    async with start_deck(settings, runner) as deck:
        assert deck.service.slots.limit == 1  # fine_tuning.max_concurrent_jobs's default
        training = await deck.dataset("counts", count_rows(10))
        body = {"model": "demo", "training_dataset": training}
        first = (await deck.call("POST", JOBS, json=body)).json()
        await until(deck, first["id"], lambda j: j["status"] == "running")
        second = (await deck.call("POST", JOBS, json=body)).json()
        events: list[dict[str, Any]] = []
        for _ in range(600):
            events = (await deck.call("GET", f"{JOBS}/{second['id']}/events")).json()["data"]
            if any("Queued for a training slot" in e["message"] for e in events):
                break
            await asyncio.sleep(0.1)
        assert any("1 of 1 in use (fine_tuning.max_concurrent_jobs)" in e["message"] for e in events), events
        assert (await deck.call("GET", f"{JOBS}/{second['id']}")).json()["status"] == "queued"
        assert len(runner.started) == 1
        runner.hold.set()
        assert (await until(deck, first["id"], final))["status"] in ("succeeded", "gated")
        assert (await until(deck, second["id"], final))["status"] in ("succeeded", "gated")
        assert [path.name for path in runner.started] == [first["id"], second["id"]]


async def test_two_slots_train_two_jobs_at_once(settings: Settings, start_deck: StartDeck, adapter_cache: Any) -> None:
    settings = settings.model_copy(update={"fine_tuning": FineTuningSettings(max_concurrent_jobs=2)})
    runner = FakeRunner(adapter_cache)
    runner.hold.clear()
    async with start_deck(settings, runner) as deck:
        training = await deck.dataset("counts", count_rows(10))
        body = {"model": "demo", "training_dataset": training}
        jobs = [(await deck.call("POST", JOBS, json=body)).json() for _ in range(2)]
        for job in jobs:
            await until(deck, job["id"], lambda j: j["status"] == "running")
        runner.hold.set()
        for job in jobs:
            await until(deck, job["id"], final)
