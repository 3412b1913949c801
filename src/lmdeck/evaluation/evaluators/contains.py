"""Contains: the output contains the expected text, or fixed substrings given as options."""

from __future__ import annotations

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import normalize, references
from lmdeck.protocol.evaluation import EvaluatorError


class Contains:
    """Share of the wanted substrings found in the output (``mode='any'``: 1 if any is found).

    Without ``value`` the wanted substrings are the row's expected answer(s).

    >>> import asyncio
    >>> ev = Contains(EvaluatorContext(), value=["paris", "france"], case_sensitive=False)
    >>> asyncio.run(ev.evaluate(Sample("Paris is lovely"))).value
    0.5
    """

    def __init__(
        self,
        ctx: EvaluatorContext,
        value: str | list[str] | None = None,
        case_sensitive: bool = True,
        mode: str = "all",
    ) -> None:
        if mode not in ("all", "any"):
            raise EvaluatorError(f"contains: mode must be 'all' or 'any', got {mode!r}")
        self.name = "contains"
        self.fixed = [value] if isinstance(value, str) else list(value) if value is not None else None
        self.requires_reference = self.fixed is None
        self.case_sensitive = bool(case_sensitive)
        self.mode = mode

    async def evaluate(self, sample: Sample) -> Score:
        wanted = self.fixed if self.fixed is not None else references(sample.expected)
        if not wanted:
            return Score(0.0, label="no_reference", explanation="nothing to look for: set value= or an expected answer")
        text = normalize(sample.output, case_sensitive=self.case_sensitive)
        found = [w for w in wanted if normalize(w, case_sensitive=self.case_sensitive) in text]
        missing = [w for w in wanted if w not in found]
        if self.mode == "any" or self.fixed is None:
            # Several expected answers are alternatives: one of them is enough.
            hit = bool(found)
            return Score(1.0 if hit else 0.0, explanation=f"found {found[0]!r}" if hit else f"none of {wanted!r} found")
        value = len(found) / len(wanted)
        explanation = "all found" if not missing else f"missing {missing!r}"
        return Score(value, explanation=explanation)


def register(registry: EvaluatorRegistry) -> None:
    registry.add("contains", Contains)
