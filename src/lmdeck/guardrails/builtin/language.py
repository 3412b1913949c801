"""``output_language``: the answer must be written in one of the allowed languages.

    english-only: {type: output_language, options: {allowed: [en]}}
    eu-support:   {type: output_language, options: {allowed: [en, fr, de], min_confidence: 0.7}}

Detection is ``lingua-language-detector`` (its n-gram models ship inside the wheel; nothing is
downloaded). Measured on one core: with all 75 languages in high-accuracy mode the first
detection loads about 900 MiB of models and takes about 25 s, so lmdeck uses lingua's
low-accuracy mode by default (trigram models of all 75 languages, preloaded: about 85 MiB and
1 s to build, about 1 ms per answer); ``accuracy: high`` with a short ``candidates`` list is
the better choice for short texts. The detector is built once per configuration, on the first
check, in a worker thread, and shared.

A text shorter than ``min_chars`` letters, or whose most likely language is below
``min_confidence``, passes: the guardrail refuses only what it is sure of. A stream is judged on
its window once the window is long enough. The verdict is ``block`` with the detected
language's ISO 639-1 code and confidence as reason and score.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Stage,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.registry import GuardrailRegistry

_build_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _cached_detector(accuracy: str, candidates: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if candidates:
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in candidates))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    if accuracy == "low":
        builder = builder.with_low_accuracy_mode()
    return builder.with_preloaded_language_models().build()


def detector(accuracy: str = "low", candidates: tuple[str, ...] = ()) -> Any:
    """The shared lingua detector for this configuration (built on the first call: a second or more)."""
    with _build_lock:
        return _cached_detector(accuracy, candidates)


@functools.cache
def _known_codes() -> frozenset[str]:
    from lingua import Language

    return frozenset(language.iso_code_639_1.name.lower() for language in Language.all())


def _codes(option: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise GuardrailError(f"output_language: {option} must be a list of ISO 639-1 codes, e.g. [en, fr]")
    codes = tuple(dict.fromkeys(v.lower() for v in value))
    unknown = sorted(set(codes) - _known_codes())
    if unknown:
        raise GuardrailError(f"output_language: {option} has unknown ISO 639-1 code(s) {', '.join(unknown)}")
    return codes


class OutputLanguage:
    """Blocks an answer written in a language outside ``allowed`` (ISO 639-1 codes).

    Options: ``allowed`` (required), ``min_confidence`` (0.5: below it the text passes),
    ``min_chars`` (20 letters: shorter texts pass), ``accuracy`` (``low`` default, or ``high``),
    ``candidates`` (the languages to tell apart; default all 75 lingua knows; the allowed ones are
    always added). Raises GuardrailError for an unknown code or a bad value, naming the option.
    """

    name = "output_language"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"output", "input"})

    def __init__(
        self,
        resources: GuardResources | None = None,
        *,
        allowed: Sequence[str],
        min_confidence: float = 0.5,
        min_chars: int = 20,
        accuracy: str = "low",
        candidates: Sequence[str] | None = None,
    ) -> None:
        self.allowed = _codes("allowed", allowed)
        if not self.allowed:
            raise GuardrailError("output_language: allowed needs at least one language, e.g. [en]")
        if (
            isinstance(min_confidence, bool)
            or not isinstance(min_confidence, int | float)
            or not 0 <= min_confidence <= 1
        ):
            raise GuardrailError(f"output_language: min_confidence must be a number in [0, 1], got {min_confidence!r}")
        if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 1:
            raise GuardrailError(f"output_language: min_chars must be a whole number >= 1, got {min_chars!r}")
        if accuracy not in ("low", "high"):
            raise GuardrailError(f"output_language: accuracy must be `low` or `high`, got {accuracy!r}")
        chosen = _codes("candidates", candidates) if candidates is not None else ()
        self.candidates = tuple(sorted({*chosen, *self.allowed})) if chosen else ()
        self.min_confidence = float(min_confidence)
        self.min_chars = min_chars
        self.accuracy = accuracy

    def warm(self) -> None:
        """Build the detector now (blocking, about a second) rather than on the first check."""
        detector(self.accuracy, self.candidates)

    def detect(self, text: str) -> tuple[str, float] | None:
        """The most likely language's ISO 639-1 code and confidence, or None when lingua cannot tell."""
        values = detector(self.accuracy, self.candidates).compute_language_confidence_values(text)
        if not values:
            return None
        top = values[0]
        return top.language.iso_code_639_1.name.lower(), float(top.value)

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        if sum(ch.isalpha() for ch in text) < self.min_chars:
            return PASS
        found = await run_blocking(self.detect, text)
        if found is None:
            return PASS
        code, confidence = found
        if code in self.allowed or confidence < self.min_confidence:
            return PASS
        return Verdict(
            "block",
            score=min(max(confidence, 0.0), 1.0),
            reason=f"written in {code} (confidence {confidence:.2f}); allowed: {', '.join(self.allowed)}",
        )


def register(registry: GuardrailRegistry) -> None:
    registry.add("output_language", OutputLanguage)
