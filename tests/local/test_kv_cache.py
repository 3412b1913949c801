"""The batch cache against the plainest reference: recomputing each sequence from scratch."""

from __future__ import annotations

import warnings

import torch

from lmdeck.local.model import LocalCausalLM


def reference_logits(lm: LocalCausalLM, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids])).logits[0, -1]


def test_rows_joining_and_leaving_match_full_recomputation(tiny_lm: LocalCausalLM) -> None:
    kv = tiny_lm.new_batch(max_rows=4, initial_width=8)  # small, so the buffers must grow and compact
    seqs: list[list[int]] = []
    rng = torch.Generator().manual_seed(0)

    def add(prompts: list[list[int]]) -> None:
        logits, cache = tiny_lm.prefill(prompts)
        kv.join(cache, [len(p) for p in prompts])
        for prompt, row in zip(prompts, logits, strict=True):
            torch.testing.assert_close(row, reference_logits(tiny_lm, prompt), atol=1e-4, rtol=1e-4)
            seqs.append(list(prompt))

    def step() -> None:
        tokens = [int(torch.randint(10, 90, (1,), generator=rng)) for _ in seqs]
        logits = tiny_lm.decode(kv, tokens, [len(s) for s in seqs])
        for seq, token, row in zip(seqs, tokens, logits, strict=True):
            seq.append(token)
            torch.testing.assert_close(row, reference_logits(tiny_lm, seq), atol=1e-4, rtol=1e-4)

    add([tiny_lm.encode("Reverse: abc")])
    for _ in range(3):
        step()
    add([tiny_lm.encode("a much longer prompt than the first one"), tiny_lm.encode("hi")])  # wider: shifts rows
    for _ in range(12):
        step()
    moved = kv.leave(0)
    assert moved == 2
    seqs[0] = seqs.pop()
    for _ in range(3):
        step()
    kv.leave(1)
    seqs.pop(1)
    for _ in range(30):  # past the buffer's capacity: leading columns are dropped, then it grows
        step()
    assert kv.rows == len(seqs) == 1
    assert kv.starts == [0]  # the one remaining row no longer pays for columns it never used


def test_a_batch_emptied_restarts_from_nothing(tiny_lm: LocalCausalLM) -> None:
    kv = tiny_lm.new_batch(max_rows=2)
    _, cache = tiny_lm.prefill([tiny_lm.encode("abc")])
    kv.join(cache, [3])
    kv.leave(0)
    assert (kv.rows, kv.width) == (0, 0)
    _, cache = tiny_lm.prefill([tiny_lm.encode("xy")])
    kv.join(cache, [2])
    out = tiny_lm.decode(kv, [20], [2])
    torch.testing.assert_close(out[0], reference_logits(tiny_lm, [*tiny_lm.encode("xy"), 20]), atol=1e-4, rtol=1e-4)


def test_the_model_is_called_through_the_supported_cache_api(tiny_lm: LocalCausalLM) -> None:
    """Regression: ``past_key_values=`` made transformers warn of its removal (in 5.40) on every step."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        prompt = tiny_lm.encode("abc")
        logits, cache = tiny_lm.prefill([prompt])
        kv = tiny_lm.new_batch(2)
        kv.join(cache, [len(prompt)])
        tiny_lm.decode(kv, [int(logits.argmax())], [len(prompt)])
    deprecations = [w for w in seen if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert [str(w.message) for w in deprecations] == []
