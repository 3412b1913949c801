"""Span arithmetic the span-finding built-ins share."""

from __future__ import annotations

from collections.abc import Iterable

from lmdeck.guardrails.base import Span


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Spans that do not overlap, in text order: of two that do, the higher score wins, then the longer.

    >>> resolve_overlaps([Span(0, 10, "CREDIT_CARD", 1.0), Span(5, 10, "PHONE_NUMBER", 0.4)])
    [Span(start=0, end=10, entity='CREDIT_CARD', score=1.0)]
    """
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= other.start or other.end <= span.start for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def count_reason(prefix: str, spans: Iterable[Span]) -> str:
    """``"PII: 1 CREDIT_CARD, 2 EMAIL_ADDRESS"``: entity types and counts, never the text found."""
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.entity] = counts.get(span.entity, 0) + 1
    return f"{prefix}: " + ", ".join(f"{n} {entity}" for entity, n in sorted(counts.items()))
