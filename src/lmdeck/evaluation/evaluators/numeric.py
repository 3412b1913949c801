"""Numeric tolerance: the number in the output is close to the expected number."""

from __future__ import annotations

import math

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import as_text, numbers
from lmdeck.protocol.evaluation import EvaluatorError


class NumericTolerance:
    """1 when ``|got - expected| <= max(abs_tol, rel_tol * |expected|)``.

    ``pick`` chooses which number of the output counts: ``last`` (default), ``first`` or
    ``only`` (the output must contain exactly one number).

    >>> import asyncio
    >>> ev = NumericTolerance(EvaluatorContext(), abs_tol=0.5)
    >>> asyncio.run(ev.evaluate(Sample("about 41.7", expected=42))).value
    1.0
    """

    requires_reference = True

    def __init__(self, ctx: EvaluatorContext, abs_tol: float = 0.0, rel_tol: float = 0.0, pick: str = "last") -> None:
        if pick not in ("last", "first", "only"):
            raise EvaluatorError(f"numeric: pick must be 'last', 'first' or 'only', got {pick!r}")
        if abs_tol < 0 or rel_tol < 0:
            raise EvaluatorError("numeric: abs_tol and rel_tol must be >= 0")
        self.name = "numeric"
        self.abs_tol = float(abs_tol)
        self.rel_tol = float(rel_tol)
        self.pick = pick

    async def evaluate(self, sample: Sample) -> Score:
        wanted = numbers(as_text(sample.expected)) if sample.expected is not None else []
        if len(wanted) != 1:
            return Score(
                0.0, label="no_reference", explanation=f"the expected answer is not one number: {sample.expected!r}"
            )
        found = numbers(sample.output)
        if not found:
            return Score(0.0, label="no_number", explanation="no number in the output")
        if self.pick == "only" and len(found) > 1:
            return Score(0.0, label="ambiguous", explanation=f"{len(found)} numbers in the output")
        got = found[0] if self.pick == "first" else found[-1]
        target = wanted[0]
        tolerance = max(self.abs_tol, self.rel_tol * abs(target))
        diff = abs(got - target)
        ok = diff <= tolerance or math.isclose(got, target)
        return Score(
            1.0 if ok else 0.0,
            explanation=f"got {got:g}, expected {target:g} (|diff| {diff:g} vs tolerance {tolerance:g})",
        )


def register(registry: EvaluatorRegistry) -> None:
    registry.add("numeric", NumericTolerance)
