"""``regex``: banned words and regular expressions.

    no-swear: {type: regex, options: {words: [damn, heck]}}
    ticket-ids: {type: regex, options: {patterns: ["\\bTCK-[0-9]{6}\\b"], entity: TICKET_ID, finding: mask}}

``words`` match whole words, ignoring case; ``patterns`` are regular expressions in Python's
syntax, run by the ``regex`` library (``ignore_case`` applies to them too). A match that runs
past ``MATCH_TIMEOUT_S`` (catastrophic backtracking) raises TimeoutError: the guardrail failed,
and the attachment's ``on_error`` decides. A match is a ``block`` finding by default (``finding``
sets ``flag`` or ``mask`` instead), with a span per match, named by ``entity``. The reason
names how many matches and where, never the matched text.
"""

from __future__ import annotations

import regex as re

from lmdeck.guardrails.base import PASS, CostClass, GuardContext, GuardrailError, Span, Stage, Verdict, run_blocking
from lmdeck.guardrails.registry import GuardrailRegistry

#: How long one text's matching may take, in seconds, before it raises TimeoutError.
MATCH_TIMEOUT_S = 1.0

#: Texts longer than this are matched in a worker thread, off the event loop.
THREAD_ABOVE_CHARS = 16_384


class RegexGuardrail:
    """Banned words and regular expressions, in input or output.

    Options: ``words`` (whole words) and/or ``patterns`` (regular expressions), ``ignore_case``
    (default true), ``entity`` (the span's entity type, default ``BANNED``), ``finding``
    (``block``, ``flag`` or ``mask``; default ``block``). Raises GuardrailError when neither
    ``words`` nor ``patterns`` is given or a pattern does not compile.
    """

    name = "regex"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(
        self,
        resources: object = None,
        *,
        words: list[str] | None = None,
        patterns: list[str] | None = None,
        ignore_case: bool = True,
        entity: str = "BANNED",
        finding: str = "block",
    ) -> None:
        if not words and not patterns:
            raise GuardrailError("regex needs `words` or `patterns` (a list of banned words or regular expressions)")
        if finding not in ("block", "flag", "mask"):
            raise GuardrailError(f"regex: `finding` must be block, flag or mask, not {finding!r}")
        sources = [rf"\b{re.escape(w)}\b" for w in words or []]
        flags = re.IGNORECASE if ignore_case else 0
        for pattern in patterns or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise GuardrailError(f"regex: pattern {pattern!r} does not compile: {exc}") from None
            sources.append(f"(?:{pattern})")
        self._regex = re.compile("|".join(sources), flags)
        self.entity = entity
        self.finding = finding

    def _spans(self, text: str) -> tuple[Span, ...]:
        return tuple(
            Span(m.start(), m.end(), self.entity)
            for m in self._regex.finditer(text, timeout=MATCH_TIMEOUT_S)
            if m.end() > m.start()
        )

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        if len(text) > THREAD_ABOVE_CHARS:
            spans = await run_blocking(self._spans, text)
        else:
            spans = self._spans(text)
        if not spans:
            return PASS
        where = ", ".join(f"[{s.start}, {s.end})" for s in spans[:5])
        reason = f"{len(spans)} banned match{'es' if len(spans) > 1 else ''} ({self.entity}) at {where}"
        return Verdict(self.finding, score=1.0, reason=reason, spans=spans)  # type: ignore[arg-type]


def register(registry: GuardrailRegistry) -> None:
    registry.add("regex", RegexGuardrail)
