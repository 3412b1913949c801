"""The regex built-in: banned words and patterns, spans without the matched text in the reason."""

from __future__ import annotations

import threading

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError, run_blocking
from lmdeck.guardrails.builtin.regex import RegexGuardrail, register
from lmdeck.guardrails.registry import GuardrailRegistry

INPUT = GuardContext("input")


async def test_words_match_whole_words_ignoring_case() -> None:
    guard = RegexGuardrail(words=["damn"])
    verdict = await guard.check("Damn it, not damnation", INPUT)
    assert verdict.blocked and [(s.start, s.end) for s in verdict.spans] == [(0, 4)]
    assert "Damn" not in verdict.reason and "[0, 4)" in verdict.reason
    assert (await guard.check("fine words", INPUT)).passed


async def test_patterns_finding_and_entity_are_options() -> None:
    guard = RegexGuardrail(patterns=[r"TCK-\d{6}"], finding="mask", entity="TICKET_ID", ignore_case=False)
    verdict = await guard.check("ticket TCK-123456 and tck-654321", INPUT)
    assert verdict.finding == "mask" and [s.entity for s in verdict.spans] == ["TICKET_ID"]


async def test_long_texts_are_matched_off_the_event_loop_with_the_same_result() -> None:
    guard = RegexGuardrail(words=["secret"])
    text = "x " * 20_000 + "secret"
    verdict = await guard.check(text, INPUT)
    assert verdict.spans[0].start == 40_000


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({}, "`words` or `patterns`"),
        ({"patterns": ["("]}, "does not compile"),
        ({"words": ["a"], "finding": "x"}, "finding"),
    ],
)
def test_bad_options_name_the_fix(options: dict[str, object], fix: str) -> None:
    registry = GuardrailRegistry()
    register(registry)
    with pytest.raises(GuardrailError, match=fix):
        registry.create("regex", options)


def test_it_registers_under_its_type_name() -> None:
    registry = GuardrailRegistry()
    register(registry)
    info = registry.info("regex")
    assert info.cost == "fast" and "words" in info.options and "resources" not in info.options


async def test_a_catastrophic_pattern_does_not_hold_the_request() -> None:
    # Python's re backtracks 2**40 times on this; the regex library finds no match at once (or times out).
    guard = RegexGuardrail(patterns=["^(a+)+$"])
    assert (await guard.check("a" * 40 + "b", GuardContext(stage="input"))).passed


async def test_blocking_checks_run_in_the_guardrails_own_threads() -> None:
    assert await run_blocking(lambda: threading.current_thread().name.split("_")[0]) == "lmdeck-guardrail"
