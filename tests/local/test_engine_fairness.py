"""The engine shares its batch fairly: turns across teams, rows given back to a team under its share, and a
full queue that makes room for a team with fewer requests waiting. Judged by engine steps, never by time."""

from __future__ import annotations

import asyncio

import pytest

from lmdeck.local.engine import GenerationHandle, LocalEngine, QueueFull
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import SamplingParams


async def first_and_last_step(handle: GenerationHandle) -> tuple[int, int, str]:
    first = None
    parts = []
    while True:
        event = await handle.next_event()
        parts.append(event.text)
        first = event.step if first is None else first
        if event.finish_reason is not None:
            return first, event.step, "".join(parts)


async def test_a_team_that_queued_first_does_not_go_first_for_everything(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=16)
    try:
        engine.pause()
        params = SamplingParams(max_tokens=2, temperature=0)
        red = [engine.submit(tiny_lm.encode(f"r{i}"), params, group="red", member="k1") for i in range(5)]
        blue = engine.submit(tiny_lm.encode("b"), params, group="blue", member="k2")
        engine.resume()
        red_steps = [await first_and_last_step(h) for h in red]
        blue_steps = await first_and_last_step(blue)
        # One row: requests run one after another. Blue is second, not sixth.
        assert red_steps[0][1] < blue_steps[0] and blue_steps[1] < red_steps[1][0]
    finally:
        engine.close()


async def test_a_team_over_its_share_gives_a_row_back_and_goes_on_where_it_stopped(tiny_lm: LocalCausalLM) -> None:
    alone_engine = LocalEngine(tiny_lm, max_batch_size=2, max_queue=4)
    try:
        params = SamplingParams(max_tokens=60, temperature=0, logprobs=0)
        alone = [alone_engine.submit(tiny_lm.encode(p), params) for p in ("long one", "long two")]
        expected = [await h.text() for h in alone]
    finally:
        alone_engine.close()

    engine = LocalEngine(tiny_lm, max_batch_size=2, max_queue=4)
    try:
        red = [engine.submit(tiny_lm.encode(p), params, group="red", member="k1") for p in ("long one", "long two")]
        started = [(await h.next_event()).text for h in red]  # red holds both rows
        blue = engine.submit(
            tiny_lm.encode("short"), SamplingParams(max_tokens=3, temperature=0), group="blue", member="k2"
        )
        _, blue_last, _ = await first_and_last_step(blue)
        red_results = [await first_and_last_step(h) for h in red]
        # Blue did not wait for red's 60-token answers: one of red's rows was given to it.
        assert engine.stats.preempted >= 1
        assert any(blue_last < last for _, last, _ in red_results)
        # The request that gave its row up went on from where it stopped: the same text, every token once.
        texts = [begun + rest for begun, (_, _, rest) in zip(started, red_results, strict=True)]
        assert texts == [text for text, _ in expected]
        assert [h.completion_tokens for h in red] == [60, 60]
        assert [len(h.logprobs) for h in red] == [60, 60]
    finally:
        engine.close()


async def test_a_full_queue_makes_room_for_a_team_with_fewer_waiting(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=2)
    try:
        engine.pause()
        params = SamplingParams(max_tokens=2, temperature=0)
        red = [engine.submit(tiny_lm.encode(f"r{i}"), params, group="red", member="k1") for i in range(2)]
        with pytest.raises(QueueFull, match=r"local\.max_queue=2"):
            engine.submit(tiny_lm.encode("r2"), params, group="red", member="k1")  # red has the most waiting
        blue = engine.submit(tiny_lm.encode("b"), params, group="blue", member="k2")
        assert engine.stats.evicted == 1
        engine.resume()
        assert (await blue.text())[1] == "length"
        assert (await red[0].text())[1] == "length"
        with pytest.raises(QueueFull):
            await red[1].text()  # red's newest waiting request made room for blue's only one
        await asyncio.sleep(0)
    finally:
        engine.close()
