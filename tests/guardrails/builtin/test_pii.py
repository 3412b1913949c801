"""The pii guardrail: Presidio's pattern recognizers over a blank spaCy pipeline, exact spans, no text in reasons."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError, GuardResources, Span, TooLargeToCheck
from lmdeck.guardrails.builtin import pii
from lmdeck.guardrails.builtin.pii import PiiDetector, PiiGuardrail
from lmdeck.guardrails.registry import GuardrailRegistry

INPUT = GuardContext(stage="input")


def found(text: str, spans: list[Span] | tuple[Span, ...]) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity) for s in spans]


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(pii.SUPPORTED_ENTITIES)


def test_registers_as_pii_and_builds_with_the_default_entities() -> None:
    registry = GuardrailRegistry()
    pii.register(registry)
    guard = registry.create("pii")
    assert guard.name == "pii" and guard.cost == "fast"
    assert guard.stages == frozenset({"input", "output"})
    assert isinstance(guard, PiiGuardrail)
    assert guard.detector.entities == pii.DEFAULT_ENTITIES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ana.lopez+tag@mail.example.co.uk today", [("ana.lopez+tag@mail.example.co.uk", "EMAIL_ADDRESS")]),
        ("card 4111 1111 1111 1111 exp 09/27", [("4111 1111 1111 1111", "CREDIT_CARD")]),
        ("amex 3782-822463-10005 please", [("3782-822463-10005", "CREDIT_CARD")]),
        ("pay to GB82 WEST 1234 5698 7654 32 now", [("GB82 WEST 1234 5698 7654 32", "IBAN_CODE")]),
        ("IBAN DE89370400440532013000.", [("DE89370400440532013000", "IBAN_CODE")]),
        (
            "from 192.168.1.20 and 2001:db8::8a2e:370:7334",
            [("192.168.1.20", "IP_ADDRESS"), ("2001:db8::8a2e:370:7334", "IP_ADDRESS")],
        ),
        ("my ssn is 536-22-8145", [("536-22-8145", "US_SSN")]),
        ("national insurance number AB 12 34 56 C", [("AB 12 34 56 C", "UK_NINO")]),
        (
            "call +44 20 7946 0958 or (415) 555-0132",
            [("+44 20 7946 0958", "PHONE_NUMBER"), ("(415) 555-0132", "PHONE_NUMBER")],
        ),
    ],
)
def test_finds_structured_pii_at_exact_offsets(
    detector: PiiDetector, text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text, detector.spans(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails the Luhn check",
        "IBAN GB82 WEST 1234 5698 7654 33 has a wrong check digit",
        "upgrade to version 1.2.3.4 or v10.0.0.1 of the agent",
        "ssn 000-12-3456 and 666-45-6789 are never issued",
        "mail me at ana@localhost",
        "",
        "   ",
    ],
)
def test_lookalikes_are_not_pii(detector: PiiDetector, text: str) -> None:
    assert detector.spans(text) == []


async def test_check_masks_with_spans_and_a_reason_without_the_text() -> None:
    guard = PiiGuardrail(GuardResources(), entities=["EMAIL_ADDRESS", "CREDIT_CARD"])
    text = "I am ana@example.org, card 4111111111111111, and bob@example.com"
    verdict = await guard.check(text, INPUT)
    assert verdict.finding == "mask" and verdict.score == 1.0
    assert found(text, verdict.spans) == [
        ("ana@example.org", "EMAIL_ADDRESS"),
        ("4111111111111111", "CREDIT_CARD"),
        ("bob@example.com", "EMAIL_ADDRESS"),
    ]
    assert verdict.reason == "PII: 1 CREDIT_CARD, 2 EMAIL_ADDRESS"
    assert "ana" not in verdict.reason and "4111" not in verdict.reason


async def test_only_the_configured_entities_are_found() -> None:
    guard = PiiGuardrail(GuardResources(), entities=["ip_address"])
    verdict = await guard.check("ana@example.org from 10.1.2.3", INPUT)
    assert [s.entity for s in verdict.spans] == ["IP_ADDRESS"]
    assert (await guard.check("ana@example.org", INPUT)).passed


async def test_the_score_threshold_drops_weak_matches() -> None:
    text = "call (415) 555-0132"
    assert (await PiiGuardrail(entities=["PHONE_NUMBER"], score_threshold=0.4).check(text, INPUT)).finding == "mask"
    assert (await PiiGuardrail(entities=["PHONE_NUMBER"], score_threshold=0.9).check(text, INPUT)).passed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"entities": ["EMAIL_ADDRESS", "SHOE_SIZE"]}, "unknown entity type(s) SHOE_SIZE"),
        ({"entities": ["PERSON"]}, "names need ner_model"),
        ({"entities": "EMAIL_ADDRESS"}, "entities must be a non-empty list"),
        ({"entities": []}, "entities must be a non-empty list"),
        ({"score_threshold": 1.5}, "score_threshold must be in [0, 1]"),
        ({"score_threshold": "high"}, "score_threshold must be a number"),
        ({"phone_regions": "US"}, "phone_regions must be a list"),
        ({"ner_model": "no_such_spacy_pipeline_xyz"}, "is not an installed spaCy pipeline"),
        ({"ner_model": "./no/such/folder"}, "is not an installed spaCy pipeline"),
        ({"ner_model": "no_such.pipeline"}, "is not an installed spaCy pipeline"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    registry = GuardrailRegistry()
    pii.register(registry)
    with pytest.raises(GuardrailError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        registry.create("pii", options)


async def test_checks_run_off_the_event_loop_and_share_one_analyzer() -> None:
    guard = PiiGuardrail(entities=["EMAIL_ADDRESS"])
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = guard.detector.spans

    def spans(text: str) -> list[Span]:
        seen.append(threading.get_ident())
        return original(text)

    guard.detector.spans = spans  # type: ignore[method-assign]
    verdicts = await asyncio.gather(*(guard.check(f"u{i}@example.org", INPUT) for i in range(8)))
    assert all(v.finding == "mask" for v in verdicts)
    assert loop_thread not in seen
    other = PiiGuardrail(entities=["EMAIL_ADDRESS"])
    assert other.detector.analyzer() is guard.detector.analyzer()


def test_person_names_come_from_an_installed_spacy_pipeline(tmp_path: object) -> None:
    spacy = pytest.importorskip("spacy")
    from pathlib import Path

    folder = Path(str(tmp_path)) / "names_pipeline"
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "ana"}, {"LOWER": "lopez"}]}])
    nlp.to_disk(folder)
    detector = PiiGuardrail(entities=["PERSON", "EMAIL_ADDRESS"], ner_model=str(folder)).detector
    text = "Ana Lopez wrote from ana@example.org"
    assert found(text, detector.spans(text)) == [("Ana Lopez", "PERSON"), ("ana@example.org", "EMAIL_ADDRESS")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mastercard 2221 3982 5979 1900 on file", [("2221 3982 5979 1900", "CREDIT_CARD")]),
        ("mastercard 2221 3982 5979 1901 fails Luhn", []),
        ("Timestamp 1622051034 is in seconds", []),
        ("mobile 4155550132 after 5", [("4155550132", "PHONE_NUMBER")]),
        ("IBAN NL78 OGGR 8751 4780 75 was rejected", []),
        ("card 4934 7776 5803 1472 is invalid", []),
        ("pip install tool==6.4.1.1 fixed it", []),
        ("connect to 10.2.3.4:8443 timed out", [("10.2.3.4", "IP_ADDRESS")]),
    ],
)
def test_lookalike_rules_on_top_of_presidio(detector: PiiDetector, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text, detector.spans(text)) == expected


@pytest.mark.parametrize(
    ("entity", "text", "value"),
    [
        ("ES_NIF", "NIF 12345678Z para la factura", "12345678Z"),
        ("IT_FISCAL_CODE", "codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        ("UK_NHS", "NHS number 943 476 5919", "943 476 5919"),
        ("MAC_ADDRESS", "device 00:1A:2B:3C:4D:5E joined", "00:1A:2B:3C:4D:5E"),
    ],
)
def test_every_optional_entity_type_has_a_working_recognizer(
    detector: PiiDetector, entity: str, text: str, value: str
) -> None:
    assert (value, entity) in found(text, detector.spans(text))


def test_a_text_over_spacys_max_length_is_analysed_in_windows_and_found_at_exact_offsets(
    detector: PiiDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    nlp = detector.analyzer().nlp_engine.nlp["en"]
    # the production windows stay under spaCy's own limit (1,000,000 characters), whatever the text's length
    assert pii.OVERLAP_CHARS < pii.WINDOW_CHARS < nlp.max_length
    # the same property at a scale that analyses in a second: spaCy's limit and the windows made small
    monkeypatch.setattr(nlp, "max_length", 20_000)
    windowed = PiiDetector(pii.SUPPORTED_ENTITIES, window_chars=2_000, overlap_chars=200)
    text = "lorem ipsum dolor sit amet " * 2_000 + "mail ana@example.org card 4111 1111 1111 1111 end"
    assert len(text) > nlp.max_length
    with pytest.raises(ValueError, match="E088"):  # one analysis of the whole text is refused by spaCy
        windowed.analyzer().analyze(text=text, language="en")
    assert found(text, windowed.spans(text)) == [
        ("ana@example.org", "EMAIL_ADDRESS"),
        ("4111 1111 1111 1111", "CREDIT_CARD"),
    ]


@pytest.mark.parametrize("shift", range(0, 60, 7))
def test_an_entity_on_a_window_border_is_found_once_and_whole(detector: PiiDetector, shift: int) -> None:
    windowed = PiiDetector(pii.DEFAULT_ENTITIES, window_chars=200, overlap_chars=80)
    text = "x" * shift + ("word " * 25 + "ana.lopez@example.org, +44 20 7946 0958; ") * 10
    spans = windowed.spans(text)
    assert spans == detector.spans(text)
    assert found(text, spans) == [("ana.lopez@example.org", "EMAIL_ADDRESS"), ("+44 20 7946 0958", "PHONE_NUMBER")] * 10


async def test_a_text_over_max_chars_is_declined_as_too_large() -> None:
    guard = PiiGuardrail(GuardResources(), entities=["EMAIL_ADDRESS"], max_chars=100)
    assert (await guard.check("a" * 100, INPUT)).passed
    with pytest.raises(TooLargeToCheck, match="101 characters, over max_chars 100"):
        await guard.check("a" * 101, INPUT)
    assert PiiGuardrail(GuardResources()).max_chars == pii.DEFAULT_MAX_CHARS


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "big"])
def test_max_chars_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(GuardrailError, match="max_chars"):
        PiiGuardrail(GuardResources(), max_chars=bad)  # type: ignore[arg-type]
