"""Regex: the output matches a pattern (an option, or the row's expected answer)."""

from __future__ import annotations

import re

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import references
from lmdeck.protocol.evaluation import EvaluatorError

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise EvaluatorError(f"regex: {pattern!r} is not a valid regular expression: {exc}") from None


class RegexMatch:
    """1 when the pattern is found in the output (``full=true``: matches the whole trimmed output).

    >>> import asyncio
    >>> ev = RegexMatch(EvaluatorContext(), pattern=r"^\\d+$", full=True)
    >>> asyncio.run(ev.evaluate(Sample("123"))).value
    1.0
    """

    def __init__(self, ctx: EvaluatorContext, pattern: str | None = None, flags: str = "", full: bool = False) -> None:
        unknown = set(flags) - set(_FLAGS)
        if unknown:
            raise EvaluatorError(f"regex: unknown flags {''.join(sorted(unknown))!r}; use any of 'imsx'")
        self.name = "regex"
        self.flags = 0
        for flag in flags:
            self.flags |= _FLAGS[flag]
        self.pattern = _compile(pattern, self.flags) if pattern is not None else None
        self.requires_reference = pattern is None
        self.full = bool(full)

    async def evaluate(self, sample: Sample) -> Score:
        if self.pattern is not None:
            patterns = [self.pattern]
        else:
            refs = references(sample.expected)
            if not refs:
                return Score(0.0, label="no_reference", explanation="no pattern: set pattern= or an expected answer")
            patterns = [_compile(r, self.flags) for r in refs]
        text = sample.output.strip() if self.full else sample.output
        for pattern in patterns:
            match = pattern.fullmatch(text) if self.full else pattern.search(text)
            if match:
                return Score(1.0, label="match", explanation=f"/{pattern.pattern}/ matched {match.group(0)[:80]!r}")
        return Score(0.0, label="no_match", explanation=f"/{patterns[0].pattern}/ did not match")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("regex", RegexMatch)
