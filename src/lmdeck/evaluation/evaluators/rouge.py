"""ROUGE-L: longest-common-subsequence overlap between the output and the reference."""

from __future__ import annotations

import re

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import references

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time and O(len(b)) space."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str, beta: float = 1.0) -> tuple[float, float, float]:
    """(precision, recall, F-measure) of ROUGE-L over lower-cased word tokens."""
    cand, ref = tokens(candidate), tokens(reference)
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    f = (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    return precision, recall, f


class RougeL:
    """ROUGE-L F-measure against the expected answer (the best over several references).

    >>> import asyncio
    >>> ev = RougeL(EvaluatorContext())
    >>> round(asyncio.run(ev.evaluate(Sample("the cat sat", expected="the cat sat down"))).value, 3)
    0.857
    """

    requires_reference = True

    def __init__(self, ctx: EvaluatorContext, beta: float = 1.0) -> None:
        self.name = "rouge_l"
        self.beta = float(beta)

    async def evaluate(self, sample: Sample) -> Score:
        refs = references(sample.expected)
        if not refs:
            return Score(0.0, label="no_reference", explanation="the row has no expected answer")
        best = max((rouge_l(sample.output, r, self.beta) for r in refs), key=lambda prf: prf[2])
        p, r, f = best
        return Score(f, explanation=f"LCS precision {p:.3f}, recall {r:.3f}")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("rouge_l", RougeL)
