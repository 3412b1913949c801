"""Choosing the next token: greedy, temperature and nucleus (top-p) sampling, seeded per request.

A request's parameters live in :class:`SamplingParams` (:mod:`lmdeck.local.params`); :func:`next_tokens` picks one
token per row of a batch, each row with its own parameters and its own random stream,
so a seeded request gives the same text whatever else shares its batch::

    params = SamplingParams(max_tokens=16, temperature=0.7, top_p=0.9, seed=42)
    rows = [RowSampler(params)]
    next_tokens(logits, rows)           # [17]
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lmdeck.local.params import SamplingParams

__all__ = ["RowSampler", "SamplingParams", "next_tokens"]


@dataclass
class RowSampler:
    """The sampling state of one sequence: its parameters and its own random generator."""

    params: SamplingParams
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator()
        seed = self.params.seed if self.params.seed is not None else secrets.randbits(63)
        self.generator.manual_seed(seed % 2**63)


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        sorted_probs[before >= params.top_p] = 0.0
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def next_tokens(logits: torch.Tensor, rows: Sequence[RowSampler]) -> list[int]:
    """One token per row of ``logits`` (shape ``[rows, vocab]``)."""
    greedy = logits.argmax(dim=-1).tolist()
    out: list[int] = []
    for i, row in enumerate(rows):
        if row.params.greedy:
            out.append(int(greedy[i]))
        else:
            # Sampling happens on the CPU so that a seed gives the same tokens on any device.
            out.append(_sample(logits[i].cpu(), row.params, row.generator))
    return out
