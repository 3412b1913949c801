from __future__ import annotations

import pytest
import torch

from lmdeck.local.sampling import RowSampler, SamplingParams, next_tokens


def test_greedy_takes_the_argmax() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 1.0]])
    rows = [RowSampler(SamplingParams(temperature=0)) for _ in range(2)]
    assert next_tokens(logits, rows) == [1, 0]


def test_seeded_sampling_repeats_and_differs_by_seed() -> None:
    logits = torch.zeros((1, 50))

    def draw(seed: int) -> list[int]:
        row = RowSampler(SamplingParams(temperature=1.0, seed=seed))
        return [next_tokens(logits, [row])[0] for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_top_p_keeps_only_the_nucleus() -> None:
    # Token 0 holds ~88% of the mass: top_p=0.5 must always choose it.
    logits = torch.tensor([[4.0, 1.0, 1.0, 0.0]])
    row = RowSampler(SamplingParams(temperature=1.0, top_p=0.5, seed=1))
    assert {next_tokens(logits, [row])[0] for _ in range(50)} == {0}


def test_rows_in_one_batch_use_their_own_parameters() -> None:
    logits = torch.tensor([[0.0, 9.0], [0.0, 9.0]])
    greedy = RowSampler(SamplingParams(temperature=0))
    hot = RowSampler(SamplingParams(temperature=100.0, seed=3))
    picks = [next_tokens(logits, [greedy, hot]) for _ in range(40)]
    assert all(p[0] == 1 for p in picks)
    assert {p[1] for p in picks} == {0, 1}


@pytest.mark.parametrize("bad", [{"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}])
def test_invalid_parameters_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**bad)  # type: ignore[arg-type]
