"""output_language: lingua's detector (models in its wheel) refuses answers in a language not allowed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError
from lmdeck.guardrails.builtin import language
from lmdeck.guardrails.builtin.language import OutputLanguage
from lmdeck.guardrails.registry import GuardrailRegistry

OUTPUT = GuardContext("output")
FRENCH = "Le rapport trimestriel montre une croissance du chiffre d'affaires de douze pour cent."
GERMAN = "Der Quartalsbericht zeigt ein Umsatzwachstum von zwölf Prozent gegenüber dem Vorjahr."
ENGLISH = "The quarterly report shows that revenue grew by twelve percent over the last year."


def test_registers_as_output_language() -> None:
    registry = GuardrailRegistry()
    language.register(registry)
    guard = registry.create("output_language", {"allowed": ["EN"]})
    assert isinstance(guard, OutputLanguage) and guard.allowed == ("en",)
    assert "output" in guard.stages


async def test_an_answer_in_an_allowed_language_passes_and_another_is_blocked() -> None:
    guard = OutputLanguage(allowed=["en", "de"])
    assert (await guard.check(ENGLISH, OUTPUT)).passed
    assert (await guard.check(GERMAN, OUTPUT)).passed
    verdict = await guard.check(FRENCH, OUTPUT)
    assert verdict.blocked and verdict.score > 0.9
    assert verdict.reason.startswith("written in fr (confidence ") and verdict.reason.endswith("allowed: en, de")


async def test_short_or_uncertain_texts_pass() -> None:
    guard = OutputLanguage(allowed=["en"])
    assert (await guard.check("Merci !", OUTPUT)).passed  # under min_chars letters
    assert (await guard.check("12345 67890 !!! ??? 4242 4242 4242 4242", OUTPUT)).passed
    sure_only = OutputLanguage(allowed=["en"], min_confidence=1.0, accuracy="high", candidates=["fr", "it"])
    assert (await sure_only.check("La pizza margherita e la baguette sont delicieuses", OUTPUT)).passed


async def test_high_accuracy_with_candidates_tells_close_languages_apart() -> None:
    guard = OutputLanguage(allowed=["es"], accuracy="high", candidates=["pt", "it"])
    assert guard.candidates == ("es", "it", "pt")
    assert (await guard.check("El informe trimestral muestra que los ingresos crecieron mucho.", OUTPUT)).passed
    verdict = await guard.check("O relatório trimestral mostra que a receita cresceu bastante.", OUTPUT)
    assert verdict.blocked and "written in pt" in verdict.reason


async def test_detection_runs_off_the_event_loop_on_one_shared_detector() -> None:
    guard = OutputLanguage(allowed=["en"])
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = guard.detect

    def detect(text: str) -> tuple[str, float] | None:
        seen.append(threading.get_ident())
        return original(text)

    guard.detect = detect  # type: ignore[method-assign]
    verdicts = await asyncio.gather(*(guard.check(FRENCH, OUTPUT) for _ in range(4)))
    assert all(v.blocked for v in verdicts) and loop_thread not in seen
    assert language.detector("low", ()) is language.detector("low", ())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "allowed"),
        ({"allowed": "en"}, "allowed must be a list of ISO 639-1 codes"),
        ({"allowed": []}, "allowed needs at least one language"),
        ({"allowed": ["en", "xx"]}, r"unknown ISO 639-1 code\(s\) xx"),
        ({"allowed": ["en"], "min_confidence": 2}, r"min_confidence must be a number in \[0, 1\]"),
        ({"allowed": ["en"], "min_chars": 0}, "min_chars must be a whole number >= 1"),
        ({"allowed": ["en"], "accuracy": "medium"}, "accuracy must be `low` or `high`"),
        ({"allowed": ["en"], "candidates": ["zz"]}, "candidates has unknown"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    registry = GuardrailRegistry()
    language.register(registry)
    with pytest.raises(GuardrailError, match=message):
        registry.create("output_language", options)
