"""LoRA adapters on the local engine: per-row choice in one batch, loading on first use, LRU eviction."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmdeck.local.adapters import AdapterSlots
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.engine import AdapterError, LocalEngine
from lmdeck.local.loading import load_causal_lm
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.random_adapter import write_random_adapter
from lmdeck.local.random_model import write_random_model
from lmdeck.local.sampling import SamplingParams

PROMPTS = ["Reverse: abcdef", "What is 12 + 30?", "Count the letter a in banana", "Capital of Peru?"]


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three random LoRA adapters for the demo model: each answers differently from the base and each other."""
    root = tmp_path_factory.mktemp("adapters")
    return [write_random_adapter(DEMO_MODEL_DIR, root / f"a{seed}", seed=seed) for seed in (1, 2, 3)]


@pytest.fixture
def lm() -> LocalCausalLM:
    # Its own copy: loading adapters changes the model it serves.
    return load_causal_lm(DEMO_MODEL_DIR, name="demo", device=torch.device("cpu"))


@pytest.fixture
def engine(lm: LocalCausalLM) -> Iterator[LocalEngine]:
    eng = LocalEngine(lm, max_batch_size=16, max_queue=32, max_adapters=2)
    yield eng
    eng.close()


def chat(engine: LocalEngine, text: str) -> list[int]:
    return engine.lm.encode(engine.lm.template.render([{"role": "user", "content": text}]))


async def generate(engine: LocalEngine, text: str, adapter: Path | None, max_tokens: int = 16) -> str:
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    handle = engine.submit(chat(engine, text), params, adapter=adapter)
    result, _ = await handle.text()
    return result


async def test_rows_with_different_adapters_in_one_batch_answer_as_each_alone(
    engine: LocalEngine, lora_dirs: list[Path]
) -> None:
    base_alone = [await generate(engine, p, None) for p in PROMPTS]
    assert engine.lm.lora is None  # no adapter asked for yet: the model's layers are untouched
    choices = [None, lora_dirs[0], lora_dirs[1]]
    alone = {(p, str(a)): await generate(engine, p, a) for p in PROMPTS for a in choices if a is not None}
    assert engine.lm.lora is not None
    # The adapters change the answers: a test of mixing them would prove nothing otherwise.
    for prompt, base in zip(PROMPTS, base_alone, strict=True):
        assert alone[(prompt, str(lora_dirs[0]))] != base or alone[(prompt, str(lora_dirs[1]))] != base
    assert any(alone[(p, str(lora_dirs[0]))] != alone[(p, str(lora_dirs[1]))] for p in PROMPTS)

    steps_before, rows_before = engine.stats.steps, engine.stats.step_rows
    jobs = [(p, a) for p in PROMPTS for a in choices]
    together = await asyncio.gather(*(generate(engine, p, a) for p, a in jobs))
    for (prompt, adapter), text in zip(jobs, together, strict=True):
        expected = base_alone[PROMPTS.index(prompt)] if adapter is None else alone[(prompt, str(adapter))]
        assert text == expected, (prompt, adapter)
    # They ran together: several rows, of different adapters, in each decode step.
    steps = engine.stats.steps - steps_before
    assert (engine.stats.step_rows - rows_before) / steps > 2


async def test_adapters_load_on_first_use_and_the_least_recently_used_is_evicted(
    engine: LocalEngine, lora_dirs: list[Path]
) -> None:
    first = {str(a): await generate(engine, "Reverse: hello", a) for a in lora_dirs}
    slots = engine.adapters
    assert (slots.loads, slots.evictions) == (3, 1)
    assert slots.loaded() == [str(lora_dirs[1].resolve()), str(lora_dirs[2].resolve())]
    # The evicted one loads again and answers as before; the least recently used (a2) makes room.
    assert await generate(engine, "Reverse: hello", lora_dirs[0]) == first[str(lora_dirs[0])]
    assert slots.loaded() == [str(lora_dirs[2].resolve()), str(lora_dirs[0].resolve())]
    assert (slots.loads, slots.evictions) == (4, 2)
    # Using one makes it the most recent: a2 stays, a3 goes.
    assert await generate(engine, "Reverse: hello", lora_dirs[2]) == first[str(lora_dirs[2])]
    assert await generate(engine, "Reverse: hello", lora_dirs[1]) == first[str(lora_dirs[1])]
    assert slots.loaded() == [str(lora_dirs[2].resolve()), str(lora_dirs[1].resolve())]


async def test_an_adapter_waits_while_every_slot_serves_a_running_row(lm: LocalCausalLM, lora_dirs: list[Path]) -> None:
    engine = LocalEngine(lm, max_batch_size=8, max_queue=8, max_adapters=1)
    try:
        alone = await generate(engine, "Reverse: abc", lora_dirs[1], max_tokens=8)
        long = engine.submit(
            chat(engine, "long"), SamplingParams(max_tokens=60, temperature=0, ignore_eos=True), adapter=lora_dirs[0]
        )
        await long.next_event()
        # Its adapter's slot is held by the running row: the second waits for it, then gets the slot.
        assert await generate(engine, "Reverse: abc", lora_dirs[1], max_tokens=8) == alone
        _, reason = await long.text()
        assert reason == "length"
        assert engine.adapters.loaded() == [str(lora_dirs[1].resolve())]
    finally:
        engine.close()


async def test_a_missing_directory_is_refused_at_submit(engine: LocalEngine, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no such directory"):
        engine.submit(chat(engine, "hi"), SamplingParams(max_tokens=2), adapter=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match=r"adapter_config\.json and adapter_model\.safetensors missing"):
        engine.submit(chat(engine, "hi"), SamplingParams(max_tokens=2), adapter=tmp_path / "empty")


async def test_an_adapter_for_another_model_ends_its_request_with_a_clear_error(
    engine: LocalEngine, lora_dirs: list[Path], tmp_path: Path
) -> None:
    other = write_random_model(tmp_path / "other", hidden=64, layers=2)
    wrong = write_random_adapter(other, tmp_path / "wrong", seed=4)
    base = await generate(engine, "Reverse: abc", None)
    handle = engine.submit(chat(engine, "Reverse: abc"), SamplingParams(max_tokens=4), adapter=wrong)
    with pytest.raises(AdapterError, match=r"does not fit model 'demo'.*train the adapter on this base model"):
        await handle.text()
    # The model is untouched and still serves the base and the adapters that fit.
    assert await generate(engine, "Reverse: abc", None) == base
    assert engine.adapters.loaded() == []
    await generate(engine, "Reverse: abc", lora_dirs[0])
    assert await generate(engine, "Reverse: abc", None) == base


async def test_a_damaged_adapter_is_an_adapter_error_not_a_crash(
    engine: LocalEngine, lora_dirs: list[Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(lora_dirs[0], damaged)
    (damaged / "adapter_model.safetensors").write_bytes(b"not safetensors")
    handle = engine.submit(chat(engine, "hi"), SamplingParams(max_tokens=2), adapter=damaged)
    with pytest.raises(AdapterError, match="not readable safetensors"):
        await handle.text()
    config = json.loads((lora_dirs[0] / "adapter_config.json").read_text())
    prefix = tmp_path / "prefix"
    shutil.copytree(lora_dirs[0], prefix)
    (prefix / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "PREFIX_TUNING"}))
    with pytest.raises(AdapterError, match="LoRA adapters only"):
        engine.submit(chat(engine, "hi"), SamplingParams(max_tokens=2), adapter=prefix)
    dora = tmp_path / "dora"
    shutil.copytree(lora_dirs[0], dora)
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    handle = engine.submit(chat(engine, "hi"), SamplingParams(max_tokens=2), adapter=dora)
    with pytest.raises(AdapterError, match="uses DoRA, which the local engine does not serve"):
        await handle.text()
    assert engine.adapters.loaded() == []


def test_the_adapted_logits_are_peft_s(lm: LocalCausalLM, lora_dirs: list[Path]) -> None:
    """Each row's logits equal those of PEFT's own model for that adapter (the reference implementation)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    slots = AdapterSlots(lm, capacity=2)
    for adapter in lora_dirs[:2]:
        assert slots.acquire(str(adapter.resolve()), busy=set())
    prompts = [lm.encode(lm.template.render([{"role": "user", "content": p}])) for p in PROMPTS[:3]]
    rows = [str(lora_dirs[0].resolve()), None, str(lora_dirs[1].resolve())]
    logits, _ = lm.prefill(prompts, adapters=slots.slots(rows))
    for i, adapter in enumerate(rows):
        base = AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR, local_files_only=True, dtype=torch.float32)
        reference = PeftModel.from_pretrained(base, adapter).eval() if adapter else base.eval()
        with torch.inference_mode():
            expected = reference(input_ids=torch.tensor([prompts[i]])).logits[0, -1]
        assert torch.allclose(logits[i], expected, atol=1e-4), (adapter, (logits[i] - expected).abs().max())


async def test_a_row_given_back_goes_on_with_its_adapter(lm: LocalCausalLM, lora_dirs: list[Path]) -> None:
    """A request that gives its row to another team (and its adapter slot to another adapter) resumes with its own."""
    params = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)
    prompts = [chat_tokens(lm, "Reverse: abcdef"), chat_tokens(lm, "Capital of Peru?")]
    alone_engine = LocalEngine(lm, max_batch_size=2, max_queue=4, max_adapters=1)
    try:
        expected = [(await alone_engine.submit(p, params, adapter=lora_dirs[0]).text())[0] for p in prompts]
    finally:
        alone_engine.close()
    engine = LocalEngine(lm, max_batch_size=2, max_queue=4, max_adapters=2)
    try:
        red = [engine.submit(p, params, group="red", member="k1", adapter=lora_dirs[0]) for p in prompts]
        started = [(await h.next_event()).text for h in red]  # red holds both rows
        blue = engine.submit(
            prompts[0], SamplingParams(max_tokens=3, temperature=0), group="blue", member="k2", adapter=lora_dirs[1]
        )
        await blue.text()
        rest = [(await h.text())[0] for h in red]
        assert engine.stats.preempted >= 1
        assert [begun + more for begun, more in zip(started, rest, strict=True)] == expected
    finally:
        engine.close()


def chat_tokens(lm: LocalCausalLM, text: str) -> list[int]:
    return lm.encode(lm.template.render([{"role": "user", "content": text}]))
