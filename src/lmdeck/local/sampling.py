"""Choosing the next token: greedy, temperature and nucleus (top-p) sampling, seeded per request.

A request's parameters live in :class:`SamplingParams`; :func:`next_tokens` picks one
token per row of a batch, each row with its own parameters and its own random stream,
so a seeded request gives the same text whatever else shares its batch::

    params = SamplingParams(max_tokens=16, temperature=0.7, top_p=0.9, seed=42)
    rows = [params.row_sampler()]
    next_tokens(logits, rows)           # tensor([17])
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How one request wants its tokens chosen. ``temperature == 0`` means greedy."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past the end token (benchmarks want a fixed length)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be 0 or more")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def row_sampler(self) -> RowSampler:
        return RowSampler(self)


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
