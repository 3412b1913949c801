"""Exact match: the output equals the expected answer (or one of them)."""

from __future__ import annotations

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import normalize, references


class ExactMatch:
    """1 when the output equals the expected answer after trimming; 0 otherwise.

    >>> import asyncio
    >>> asyncio.run(ExactMatch(EvaluatorContext()).evaluate(Sample(" 42 ", expected=42))).value
    1.0
    """

    requires_reference = True

    def __init__(self, ctx: EvaluatorContext, case_sensitive: bool = True, collapse_space: bool = True) -> None:
        self.name = "exact"
        self.case_sensitive = bool(case_sensitive)
        self.collapse_space = bool(collapse_space)

    def _norm(self, text: str) -> str:
        return normalize(text, case_sensitive=self.case_sensitive, collapse_space=self.collapse_space)

    async def evaluate(self, sample: Sample) -> Score:
        refs = references(sample.expected)
        if not refs:
            return Score(0.0, label="no_reference", explanation="the row has no expected answer")
        got = self._norm(sample.output)
        for ref in refs:
            if got == self._norm(ref):
                return Score(1.0, label="match", explanation=f"output equals {ref!r}")
        return Score(0.0, label="mismatch", explanation=f"expected {refs[0]!r}, got {sample.output.strip()[:200]!r}")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("exact", ExactMatch)
