"""Reversible masking: placeholders in the request, the originals restored in the answer.

One :class:`MaskSession` per request. Each distinct value found gets a numbered placeholder
named by its entity type (the same value keeps the same placeholder, so the model can refer
to it); the answer's placeholders are put back, so the client sees its own data and the
upstream never does::

    session = MaskSession()
    sent = session.mask("mail bob@example.com", [Span(5, 20, "EMAIL_ADDRESS")])
    sent                                       # 'mail <EMAIL_ADDRESS_1>'
    session.restore("I wrote to <EMAIL_ADDRESS_1>.")   # 'I wrote to bob@example.com.'

A stream's placeholders may be split across chunks (``"<EMAIL_"``, ``"ADDRESS_1>"``):
:class:`StreamRestorer` holds back the tail of the text that could still become a
placeholder, and lets everything else through at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lmdeck.guardrails.base import Span
from lmdeck.pipeline.context import Slot

#: What a placeholder looks like: ``<ENTITY_TYPE_N>``.
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """The spans without overlaps, in order: of two that overlap, the longer (then the higher score) wins."""
    ranked = sorted(spans, key=lambda s: (-(s.end - s.start), -s.score, s.start))
    chosen: list[Span] = []
    for span in ranked:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def redact(text: str, spans: list[Span]) -> str:
    """``text`` with each span replaced by ``[ENTITY]`` (not restorable: for what must go for good)."""
    out: list[str] = []
    position = 0
    for span in merge_spans([s for s in spans if s.end <= len(text)]):
        out.append(text[position : span.start])
        out.append(f"[{span.entity}]")
        position = span.end
    out.append(text[position:])
    return "".join(out)


def _entity_name(entity: str) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", entity.upper()).strip("_")
    return name if name and name[0].isalpha() else f"ENTITY_{name}".rstrip("_")


class MaskSession:
    """The placeholders of one request and the originals they stand for (kept in memory only)."""

    def __init__(self) -> None:
        self._placeholder_of: dict[tuple[str, str], str] = {}
        self._original_of: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._original_of)

    @property
    def entities(self) -> dict[str, int]:
        """How many distinct values of each entity type were masked (what the trace may show)."""
        return dict(self._counts)

    def placeholder(self, entity: str, original: str) -> str:
        """The placeholder of ``original`` (a new one the first time it is seen)."""
        name = _entity_name(entity)
        known = self._placeholder_of.get((name, original))
        if known is not None:
            return known
        self._counts[name] = self._counts.get(name, 0) + 1
        made = f"<{name}_{self._counts[name]}>"
        self._placeholder_of[(name, original)] = made
        self._original_of[made] = original
        return made

    def mask(self, text: str, spans: Sequence[Span]) -> str:
        """``text`` with each span replaced by its placeholder; spans past the text's end are ignored."""
        out: list[str] = []
        position = 0
        for span in merge_spans([s for s in spans if s.end <= len(text)]):
            out.append(text[position : span.start])
            out.append(self.placeholder(span.entity, text[span.start : span.end]))
            position = span.end
        out.append(text[position:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this session replaced by its original."""
        if not self._original_of:
            return text
        return PLACEHOLDER.sub(lambda m: self._original_of.get(m.group(0), m.group(0)), text)

    def could_continue(self, tail: str) -> bool:
        """Whether ``tail`` (starting with ``<``) is the beginning of one of this session's placeholders."""
        return any(p.startswith(tail) for p in self._original_of)

    def restorer(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    """Restores placeholders in a stream of text pieces, holding back only a possible placeholder's start.

    >>> session = MaskSession(); _ = session.placeholder("EMAIL_ADDRESS", "a@b.io")
    >>> r = session.restorer(); r.feed("to <EMAIL_"), r.feed("ADDRESS_1>!"), r.flush()
    ('to ', 'a@b.io!', '')
    """

    def __init__(self, session: MaskSession) -> None:
        self.session = session
        self._held = ""

    def feed(self, piece: str) -> str:
        """The text that can be sent now, placeholders restored."""
        text = self._held + piece
        self._held = ""
        start = text.rfind("<")
        if start != -1 and ">" not in text[start:] and self.session.could_continue(text[start:]):
            text, self._held = text[:start], text[start:]
        return self.session.restore(text)

    def flush(self) -> str:
        """What was held back, at the end of the stream (it did not become a placeholder)."""
        held, self._held = self._held, ""
        return held


#: The placeholders of the request, put by the input step for the step that restores the answer.
MASKS: Slot[MaskSession] = Slot("guardrails.masks")
