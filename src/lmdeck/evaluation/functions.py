"""User-defined evaluators that are plain Python functions of the sample."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from lmdeck.evaluation.base import Sample, Score
from lmdeck.protocol.evaluation import EvaluatorError

SampleFunction = Callable[[Sample], "bool | float | Score | Awaitable[bool | float | Score]"]


def as_score(result: Any, name: str) -> Score:
    """A function's return value as a Score: bools become 1/0, numbers must lie in [0, 1]."""
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0, explanation="passed" if result else "failed")
    if isinstance(result, int | float):
        return Score(float(result))
    if isinstance(result, str):
        return Score(None, label=result)
    raise EvaluatorError(f"evaluator {name!r} returned {type(result).__name__}: return a bool, a number or a Score")


class FunctionEvaluator:
    """Wraps ``fn(sample)`` (sync or async) as an evaluator.

    >>> import asyncio
    >>> ev = FunctionEvaluator("short", lambda s: len(s.output) < 5)
    >>> asyncio.run(ev.evaluate(Sample("hi"))).value
    1.0
    """

    def __init__(self, name: str, fn: SampleFunction, *, requires_reference: bool = False) -> None:
        self.name = name
        self.fn = fn
        self.requires_reference = requires_reference

    async def evaluate(self, sample: Sample) -> Score:
        result = self.fn(sample)
        if inspect.isawaitable(result):
            result = await result
        return as_score(result, self.name)
