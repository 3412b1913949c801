"""Overlapping spans resolved by score then length; reasons that count entity types."""

from __future__ import annotations

from lmdeck.guardrails.base import Span
from lmdeck.guardrails.builtin.spans import count_reason, resolve_overlaps


def test_overlapping_spans_keep_the_stronger_then_the_longer() -> None:
    spans = [Span(0, 16, "CREDIT_CARD", 1.0), Span(4, 16, "PHONE_NUMBER", 0.4), Span(20, 25, "US_SSN", 0.5)]
    assert resolve_overlaps(spans) == [Span(0, 16, "CREDIT_CARD", 1.0), Span(20, 25, "US_SSN", 0.5)]
    assert resolve_overlaps([Span(0, 4, "A", 0.5), Span(0, 9, "B", 0.5)]) == [Span(0, 9, "B", 0.5)]
    assert resolve_overlaps([Span(5, 9, "A"), Span(0, 5, "B")]) == [Span(0, 5, "B"), Span(5, 9, "A")]


def test_reason_counts_entity_types_in_name_order() -> None:
    spans = [Span(0, 3, "EMAIL"), Span(4, 7, "CARD"), Span(8, 9, "EMAIL")]
    assert count_reason("PII", spans) == "PII: 1 CARD, 2 EMAIL"
