"""Second checks on a semantic match, before a cached answer is served for a different text.

Sentence embeddings place near-misses close together: "convert 10 miles to km" and "convert 12
miles to km", "how do I turn on notifications" and "... turn off ...", "the capital of France" and
"... of Germany" are each more similar than many true paraphrases (measured on
tests/data/cache/paraphrases.jsonl, docs/benchmarks.md). :class:`TermVerifier` accepts a candidate
only when both texts use the same numbers (digits and number words), the same parity of negations
and, stop words aside, content words (identifiers such as ``a1b2`` included) one of which contains the other's with at most two words of
difference in all. It trades recall for precision; ``cache.semantic.verify_terms`` turns it off::

    verifier = TermVerifier()
    verifier("Convert 10 miles to km.", "How many km are in 10 miles?")     # True
    verifier("Convert 10 miles to km.", "Convert 12 miles to km.")          # False
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["TermVerifier", "Terms"]

_NUMBER_WORDS = {
    word: float(n)
    for n, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {
    word: float(10 * (n + 3))
    for n, word in enumerate(["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])
}
_NEGATIONS = frozenset(
    {"not", "n't", "no", "never", "without", "none", "nothing", "nobody", "neither", "nor", "cannot"}
)
#: Stop words that still flip a request's meaning ("turn notifications on/off"), kept as content.
_POLAR = frozenset({"on", "off", "up", "down", "before", "after", "above", "below", "more", "less", "first", "last"})
_LOAD = threading.Lock()


@functools.cache
def _english() -> tuple[Callable[[str], Iterable[Any]], frozenset[str]]:
    """spaCy's English tokenizer and the stop words that are not content here, loaded on first use.

    Loading spaCy takes seconds (it imports the packages that register spaCy components, PyTorch
    among them), so a gateway whose semantic cache never compares two texts never pays for it.
    """
    with _LOAD:  # one load when two threads compare at once
        import spacy
        from spacy.lang.en.stop_words import STOP_WORDS

        return spacy.blank("en").tokenizer, frozenset(STOP_WORDS) - _NEGATIONS - _POLAR


@dataclass(frozen=True)
class Terms:
    """What must agree between two texts: their numbers, negation parity and content words."""

    numbers: frozenset[float]
    negated: bool
    content: frozenset[str]


def _number(token: str) -> float | None:
    plain = token.replace(",", "")
    try:
        return float(plain)
    except ValueError:
        return _NUMBER_WORDS.get(token)


class TermVerifier:
    """``verifier(query, cached) -> bool``: see the module docstring. ``max_difference`` content words
    may differ in all, provided the smaller set is contained in the larger."""

    def __init__(self, max_difference: int = 2) -> None:
        self.max_difference = max_difference

    def terms(self, text: str) -> Terms:
        numbers: set[float] = set()
        negations = 0
        content: set[str] = set()
        tokenizer, stop = _english()
        for token in tokenizer(text.lower()):
            word = token.text
            number = _number(word)
            if number is not None:
                numbers.add(number)
            elif word in _NEGATIONS:
                negations += 1
            elif word.isalnum() and word not in stop:  # words, and identifiers such as order ids
                content.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
        return Terms(frozenset(numbers), negations % 2 == 1, frozenset(content))

    def __call__(self, query: str, cached: str) -> bool:
        a, b = self.terms(query), self.terms(cached)
        if a.numbers != b.numbers or a.negated != b.negated:
            return False
        small, large = (a.content, b.content) if len(a.content) <= len(b.content) else (b.content, a.content)
        return small <= large and len(large - small) <= self.max_difference
