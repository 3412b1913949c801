"""PII scrubbing of training text, through the PII guardrail's detector and masking.

A :class:`TextScrubber` turns a text into one fit to train on. :class:`PiiScrubber` finds
personal data with the ``pii`` guardrail's detector (Presidio's pattern recognizers: emails,
phone numbers, cards, IBANs, IP addresses, national ids) and replaces each value with the
placeholder the gateway's input masking uses (``<EMAIL_ADDRESS_1>``), so a model trained on
the result learns the placeholders, never the data::

    scrubber = PiiScrubber()
    scrubber.scrub("mail bob@example.com")   # 'mail <EMAIL_ADDRESS_1>'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lmdeck.guardrails.builtin.pii import DEFAULT_ENTITIES, PiiDetector
from lmdeck.guardrails.masking import MaskSession


@runtime_checkable
class TextScrubber(Protocol):
    """Removes what must not be trained on from a text (blocking; called from a worker thread)."""

    def scrub(self, text: str) -> str: ...


class PiiScrubber:
    """The PII guardrail's detection and placeholder masking, one text at a time.

    ``entities`` are the guardrail's entity types (default: its defaults); the analyzer is built on
    the first call (seconds) and shared with any ``pii`` guardrail of the same configuration.
    """

    def __init__(self, entities: Sequence[str] = DEFAULT_ENTITIES, score_threshold: float = 0.4) -> None:
        self.detector = PiiDetector(entities=entities, score_threshold=score_threshold)

    def scrub(self, text: str) -> str:
        spans = self.detector.spans(text)
        return MaskSession().mask(text, spans) if spans else text
