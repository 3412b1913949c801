"""The continuous-batching engine on a tiny random model (which never stops before max_tokens)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from lmdeck.local.engine import EngineClosed, LocalEngine, PromptTooLong, QueueFull
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import SamplingParams

PROMPTS = ["Reverse: abc", "What is 12 + 30?", "hi", "Capital of Peru?", "Extract JSON: Ana is 30.", "x"]


@pytest.fixture
def engine(tiny_lm: LocalCausalLM) -> Iterator[LocalEngine]:
    eng = LocalEngine(tiny_lm, max_batch_size=8, max_queue=16, max_prefill_rows=2)
    yield eng
    eng.close()


async def generate(engine: LocalEngine, prompt: str, **params: object) -> str:
    handle = engine.submit(engine.lm.encode(prompt), SamplingParams(**params))  # type: ignore[arg-type]
    text, _ = await handle.text()
    return text


async def test_batched_greedy_equals_one_at_a_time(engine: LocalEngine) -> None:
    alone = [await generate(engine, p, max_tokens=24, temperature=0) for p in PROMPTS]
    assert engine.stats.mean_batch == 1.0

    async def staggered(i: int, prompt: str) -> str:
        await asyncio.sleep(0.002 * i)  # arrive while the others are mid-generation
        return await generate(engine, prompt, max_tokens=24, temperature=0)

    together = await asyncio.gather(*(staggered(i, p) for i, p in enumerate(PROMPTS)))
    assert list(together) == alone
    assert engine.stats.mean_batch > 1.0


async def test_a_request_joins_a_running_batch(engine: LocalEngine) -> None:
    long = engine.submit(engine.lm.encode("long one"), SamplingParams(max_tokens=120, temperature=0))
    long_first = await long.next_event()
    short = engine.submit(engine.lm.encode("short"), SamplingParams(max_tokens=3, temperature=0))
    short_steps = []
    while (event := await short.next_event()).finish_reason is None:
        short_steps.append(event.step)
    short_steps.append(event.step)
    while (event := await long.next_event()).finish_reason is None:
        pass
    # The short request started after the long one and finished before it: it ran inside the same batch.
    assert long_first.step < short_steps[0] <= short_steps[-1] < event.step
    assert event.finish_reason == "length"


async def test_max_tokens_ends_with_length(engine: LocalEngine) -> None:
    handle = engine.submit(engine.lm.encode("count"), SamplingParams(max_tokens=7, temperature=0))
    _, reason = await handle.text()
    assert (reason, handle.completion_tokens) == ("length", 7)


async def test_stop_sequence_cuts_the_text(engine: LocalEngine) -> None:
    full = await generate(engine, "some prompt", max_tokens=30, temperature=0)
    stop = full[10:13]
    cut = await generate(engine, "some prompt", max_tokens=30, temperature=0, stop=(stop,))
    assert cut == full[: full.index(stop)]


async def test_seeded_sampling_is_reproducible_inside_a_batch(engine: LocalEngine) -> None:
    alone = await generate(engine, "seeded", max_tokens=20, temperature=1.0, seed=11)
    others = [generate(engine, p, max_tokens=20, temperature=1.0) for p in PROMPTS]
    results = await asyncio.gather(generate(engine, "seeded", max_tokens=20, temperature=1.0, seed=11), *others)
    assert results[0] == alone
    assert await generate(engine, "seeded", max_tokens=20, temperature=1.0, seed=12) != alone


async def test_cancelling_frees_the_row_for_the_next_request(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=4)
    try:
        first = engine.submit(tiny_lm.encode("a"), SamplingParams(max_tokens=200, temperature=0))
        await first.next_event()
        first.cancel()
        # With one row only, this finishes only if the cancelled request gave its row back.
        _, reason = await asyncio.wait_for(
            engine.submit(tiny_lm.encode("b"), SamplingParams(max_tokens=4, temperature=0)).text(), timeout=30
        )
        assert reason == "length"
        assert engine.stats.cancelled == 1
    finally:
        engine.close()


async def test_full_queue_is_refused(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=2)
    try:
        engine.pause()
        waiting = [engine.submit(tiny_lm.encode(p), SamplingParams(max_tokens=3, temperature=0)) for p in ("a", "b")]
        with pytest.raises(QueueFull, match="max_queue=2"):
            engine.submit(tiny_lm.encode("c"), SamplingParams(max_tokens=3, temperature=0))
        engine.resume()
        assert [(await h.text())[1] for h in waiting] == ["length", "length"]
        assert engine.stats.rejected == 1
    finally:
        engine.close()


async def test_prompt_longer_than_the_context_is_refused(engine: LocalEngine) -> None:
    with pytest.raises(PromptTooLong, match="shorten the prompt"):
        engine.submit([20] * engine.lm.context_length, SamplingParams())
    with pytest.raises(PromptTooLong):
        engine.submit([], SamplingParams())


async def test_max_tokens_is_clamped_to_the_context(engine: LocalEngine) -> None:
    prompt = [20] * (engine.lm.context_length - 5)
    handle = engine.submit(prompt, SamplingParams(max_tokens=1000, temperature=0))
    _, reason = await handle.text()
    assert (reason, handle.completion_tokens) == ("length", 5)


async def test_closing_the_engine_ends_pending_requests(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=4)
    engine.pause()
    handle = engine.submit(tiny_lm.encode("a"), SamplingParams(max_tokens=5, temperature=0))
    await asyncio.to_thread(engine.close)
    with pytest.raises(EngineClosed):
        await handle.text()
    with pytest.raises(EngineClosed):
        engine.submit(tiny_lm.encode("a"), SamplingParams(max_tokens=5, temperature=0))


async def test_a_request_cancelled_while_waiting_gives_its_place_back(tiny_lm: LocalCausalLM) -> None:
    engine = LocalEngine(tiny_lm, max_batch_size=1, max_queue=1)
    try:
        running = engine.submit(tiny_lm.encode("a"), SamplingParams(max_tokens=200, temperature=0))
        await running.next_event()
        waiting = engine.submit(tiny_lm.encode("b"), SamplingParams(max_tokens=3, temperature=0))
        with pytest.raises(QueueFull):
            engine.submit(tiny_lm.encode("c"), SamplingParams(max_tokens=3, temperature=0))
        waiting.cancel()
        deadline = time.monotonic() + 60  # generous: a loaded machine only makes the wait longer
        while engine.stats.waiting != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        third = engine.submit(tiny_lm.encode("c"), SamplingParams(max_tokens=3, temperature=0))
        running.cancel()
        assert (await third.text())[1] == "length"
    finally:
        engine.close()


async def test_rows_leave_after_the_batch_grew_inside_a_forward_pass(tiny_lm: LocalCausalLM) -> None:
    """Regression: buffers grown during a decode step were inference tensors, so the first row to leave
    after that (moving the last row into its place) failed the step for every running request."""
    engine = LocalEngine(tiny_lm, max_batch_size=2, max_queue=2)
    try:
        short = engine.submit(tiny_lm.encode("a"), SamplingParams(max_tokens=150, temperature=0))
        long = engine.submit(tiny_lm.encode("b"), SamplingParams(max_tokens=200, temperature=0))
        assert (await short.text())[1] == "length"  # row 0 leaves; row 1 moves into its place
        assert (await long.text())[1] == "length"
        assert (short.completion_tokens, long.completion_tokens) == (150, 200)
    finally:
        engine.close()
