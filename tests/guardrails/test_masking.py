"""Reversible masking: placeholders out, originals back, in whole answers and split across stream chunks."""

from __future__ import annotations

from lmdeck.guardrails.base import Span
from lmdeck.guardrails.masking import MaskSession, merge_spans

TEXT = "mail bob@example.com or bob@example.com, card 4111 1111 1111 1111"


def spans() -> list[Span]:
    return [Span(5, 20, "EMAIL_ADDRESS"), Span(24, 39, "EMAIL_ADDRESS"), Span(46, 65, "CREDIT_CARD")]


def test_the_same_value_keeps_its_placeholder_and_types_are_numbered_apart() -> None:
    session = MaskSession()
    masked = session.mask(TEXT, spans())
    assert masked == "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>"
    assert "bob@example.com" not in masked and "4111" not in masked
    assert session.entities == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert session.restore(masked) == TEXT


def test_unknown_placeholders_are_left_alone() -> None:
    session = MaskSession()
    session.mask(TEXT, spans())
    assert session.restore("see <EMAIL_ADDRESS_7> and <PHONE_NUMBER_1>") == "see <EMAIL_ADDRESS_7> and <PHONE_NUMBER_1>"


def test_overlapping_spans_keep_the_longer() -> None:
    merged = merge_spans([Span(0, 5, "A"), Span(2, 10, "B"), Span(12, 14, "C")])
    assert [(s.start, s.end, s.entity) for s in merged] == [(2, 10, "B"), (12, 14, "C")]


def test_a_placeholder_split_across_chunks_is_restored_whole() -> None:
    session = MaskSession()
    session.mask(TEXT, spans())
    pieces = ["I wrote to <EM", "AIL_ADD", "RESS_1> and charged <", "CREDIT_CARD_1>", " <b>bold</b>"]
    restorer = session.restorer()
    out = [restorer.feed(p) for p in pieces] + [restorer.flush()]
    assert "".join(out) == "I wrote to bob@example.com and charged 4111 1111 1111 1111 <b>bold</b>"
    # Nothing that could still become a placeholder is sent early, nothing else is held.
    assert out[0] == "I wrote to " and out[1] == "" and out[4] == " <b>bold</b>"


def test_a_held_back_start_that_never_becomes_a_placeholder_is_flushed() -> None:
    session = MaskSession()
    session.mask(TEXT, spans())
    restorer = session.restorer()
    assert restorer.feed("a <EMAIL") == "a "
    assert restorer.flush() == "<EMAIL"
