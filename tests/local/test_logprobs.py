"""Log-probabilities from the engine are the model's: checked against a plain forward pass with no cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lmdeck.local.engine import GenerationHandle, LocalEngine
from lmdeck.local.logprobs import TokenText
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import SamplingParams


@pytest.fixture
def engine(tiny_lm: LocalCausalLM) -> Iterator[LocalEngine]:
    eng = LocalEngine(tiny_lm, max_batch_size=4, max_queue=8)
    yield eng
    eng.close()


@torch.inference_mode()
def reference(lm: LocalCausalLM, ids: list[int]) -> torch.Tensor:
    """``[len(ids), vocab]`` log-probabilities of the next token after each prefix, from one uncached forward pass."""
    logits = lm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)


async def finish(handle: GenerationHandle) -> str:
    text, _ = await handle.text()
    return text


async def test_generated_logprobs_are_the_models_distribution_inside_a_batch(engine: LocalEngine) -> None:
    lm = engine.lm
    prompts = [lm.encode("Reverse: abc"), lm.encode("hi"), lm.encode("What is 12 + 30? Tell me now.")]
    # Sampled at a high temperature, in one batch with rows of other lengths (left padding, shared steps).
    handles = [
        engine.submit(p, SamplingParams(max_tokens=12, temperature=1.5, seed=i, logprobs=3))
        for i, p in enumerate(prompts)
    ]
    await asyncio.gather(*(finish(h) for h in handles))
    for prompt, handle in zip(prompts, handles, strict=True):
        generated = [e.token_id for e in handle.logprobs]
        assert len(generated) == handle.completion_tokens == 12
        expected = reference(lm, prompt + generated)
        for i, entry in enumerate(handle.logprobs):
            row = expected[len(prompt) - 1 + i]
            # Not the temperature-scaled distribution it was sampled from: the model's own.
            assert entry.logprob == pytest.approx(float(row[entry.token_id]), abs=1e-4)
            values, ids = row.topk(3)
            assert [t for t, _ in entry.top] == ids.tolist()
            assert [lp for _, lp in entry.top] == pytest.approx(values.tolist(), abs=1e-4)


async def test_prompt_logprobs_score_every_token_but_the_first(engine: LocalEngine) -> None:
    prompt = engine.lm.encode("Capital of Peru?")
    handle = engine.submit(prompt, SamplingParams(max_tokens=0, prompt_logprobs=2))
    text, reason = await handle.text()
    assert (text, reason, handle.completion_tokens) == ("", "length", 0)
    assert handle.prompt_logprobs is not None
    first, *rest = handle.prompt_logprobs
    assert first is None
    expected = reference(engine.lm, prompt)
    assert [e.token_id for e in rest if e is not None] == prompt[1:]
    for i, entry in enumerate(rest):
        assert entry is not None
        assert entry.logprob == pytest.approx(float(expected[i][prompt[i + 1]]), abs=1e-4)
        assert len(entry.top) == 2


async def test_entries_cover_exactly_the_text_returned(engine: LocalEngine) -> None:
    lm = engine.lm
    full = engine.submit(lm.encode("some prompt"), SamplingParams(max_tokens=30, temperature=0, logprobs=0))
    whole = await finish(full)
    assert "".join(lm.decode_text([e.token_id]) for e in full.logprobs) == whole
    pieces = [lm.decode_text([e.token_id]) for e in full.logprobs]
    assert [e.offset for e in full.logprobs] == [len("".join(pieces[:i])) for i in range(len(pieces))]
    stop = whole[10:13]
    cut = engine.submit(
        lm.encode("some prompt"), SamplingParams(max_tokens=30, temperature=0, logprobs=0, stop=(stop,))
    )
    text = await finish(cut)
    assert text == whole[: whole.index(stop)]
    # The stop sequence's own tokens are not part of the answer, so they have no entries.
    assert "".join(lm.decode_text([e.token_id]) for e in cut.logprobs) == text


async def test_no_entries_unless_asked(engine: LocalEngine) -> None:
    handle = engine.submit(engine.lm.encode("x"), SamplingParams(max_tokens=4, temperature=0))
    await finish(handle)
    assert handle.logprobs == [] and handle.prompt_logprobs is None


def test_max_tokens_zero_needs_prompt_logprobs() -> None:
    with pytest.raises(ValueError, match="score the prompt"):
        SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="logprobs must be between"):
        SamplingParams(logprobs=21)


def test_byte_level_tokens_carry_their_bytes() -> None:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["café au lait", "naïve café"] * 20, trainer)
    names = TokenText(tokenizer)
    ids = tokenizer.encode("café").ids
    pieces = [names.describe(i) for i in ids]
    assert b"".join(bytes(raw) for _, raw in pieces).decode() == "café"
    # A lone byte of "é" (0xc3 0xa9) is no text: written the way OpenAI writes it.
    half = next(i for i in range(tokenizer.get_vocab_size()) if names.describe(i)[1] == [0xC3])
    assert names.describe(half) == ("bytes:\\xc3", [0xC3])
