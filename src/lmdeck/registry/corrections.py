"""Corrections: the answers people said a model should have given, by trace, for dataset rows.

A dataset version cut from traces takes its ``expected`` output from the model's answer by
default; with a correction source it takes the answer a person gave instead (the ``correction``
of a feedback entry, or of an annotation label) and records ``metadata.source = "correction"``.
The sources live in evaluation, which registers them here, so the registry names none::

    sources = CorrectionSources()
    sources.add("feedback", lambda trace_ids: feedback_store.corrections(trace_ids))
    sources.find("feedback", ["0190..."])     # {"0190...": "3"}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from lmdeck.protocol import APIError

#: Where a dataset cut from traces takes corrections from: none, feedback or annotation labels.
CorrectionKind = Literal["none", "feedback", "annotations"]

#: A source: trace ids → the newest correction of each trace that has one (blocking).
CorrectionLookup = Callable[[Sequence[str]], dict[str, Any]]


class CorrectionSources:
    """Correction sources by name (``feedback``, ``annotations``), registered by the layers that own them."""

    def __init__(self) -> None:
        self._sources: dict[str, CorrectionLookup] = {}

    def add(self, name: str, lookup: CorrectionLookup) -> None:
        self._sources[name] = lookup

    def names(self) -> list[str]:
        return sorted(self._sources)

    def find(self, name: str, trace_ids: Sequence[str]) -> dict[str, Any]:
        """Trace id → correction for the traces among ``trace_ids`` that have one (blocking)."""
        lookup = self._sources.get(name)
        if lookup is None:
            known = ", ".join(self.names()) or "none: this server has no evaluation"
            raise APIError(
                400,
                f"no correction source {name!r} (known: {known})",
                param="corrections",
                code="invalid_value",
            )
        return lookup(trace_ids)
