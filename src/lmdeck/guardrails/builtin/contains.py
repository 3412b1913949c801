"""``contains``: the text holds a URL or source code.

    no-links:   {type: contains, options: {kinds: [url], allowed_domains: [example.com]}}
    prose-only: {type: contains, options: {kinds: [code]}}

``url``: ``http(s)://`` and ``ftp://`` addresses and ``www.`` hosts (trailing punctuation is
not part of the address); a URL whose host is one of ``allowed_domains`` or below one passes.
``code``: fenced Markdown blocks (```` ``` ```` or ``~~~``, an unclosed fence runs to the end)
and runs of at least ``min_code_lines`` consecutive lines that look like code (a keyword that
starts a statement in common languages, a line ending in ``;``, ``{`` or ``}``, a shell prompt,
a markup tag, an assignment, a bare call ``name(…)``). Each finding is a span (entity ``URL`` or ``CODE``), so the route may block,
flag or mask; the finding is ``block``. The reason counts them, never quotes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Span,
    Stage,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.builtin.spans import count_reason, resolve_overlaps
from lmdeck.guardrails.registry import GuardrailRegistry

KINDS = ("url", "code")

#: Texts longer than this are scanned in a worker thread, off the event loop.
THREAD_ABOVE_CHARS = 16_384

_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\"*"
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:def|class|import|from\s+\S+\s+import|function|const|let|var|return|public|private|protected|static
          |package|func|fn|impl|struct|enum|interface|using|namespace|elif|except|try|catch|finally|lambda
          |async\s+def|await|export|require|module|echo|sudo|pip|npm|SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM
          |CREATE\s+TABLE|ALTER\s+TABLE|DROP\s+TABLE)\b
      | \#include\b | \#!/ | \$\s+\S | >>>\s | @\w+(?:\(|$)
      | <\/?[a-zA-Z][\w-]*(?:\s[^>]*)?>
      | .*[;{}]\s*$
      | .*\)\s*:\s*$
      | (?:if|for|while|switch)\s*\(.*\)\s*\{?\s*$
      | [A-Za-z_][\w.]*\s*(?:=|\+=|-=|:=)\s*[^=\s].*$
      | [A-Za-z_][\w.]*\(.*\)\s*;?\s*$
    )""",
    re.VERBOSE,
)


def url_spans(text: str, allowed_domains: Sequence[str] = ()) -> list[Span]:
    """The URLs of ``text`` whose host is not under one of ``allowed_domains``."""
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _URL_TRAILING:
            if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
                break  # a URL's own brackets (…/Foo_(bar)) stay
            end -= 1
        url = text[start:end]
        host = (urlsplit(url if "://" in url else "http://" + url).hostname or "").lower().rstrip(".")
        if any(host == d or host.endswith("." + d) for d in allowed_domains):
            continue
        if end > start:
            spans.append(Span(start, end, "URL"))
    return spans


def code_spans(text: str, min_lines: int = 2) -> list[Span]:
    """Fenced code blocks and runs of ``min_lines`` or more code-looking lines."""
    spans = [Span(m.start(), m.end(), "CODE") for m in _FENCE.finditer(text) if m.end() > m.start()]
    run_start: int | None = None
    run_end = 0
    run_lines = 0
    offset = 0
    for line in [*text.splitlines(keepends=True), ""]:
        body = line.rstrip("\r\n")
        if body.strip() and _CODE_LINE.match(body):
            if run_start is None:
                run_start, run_lines = offset + len(body) - len(body.lstrip()), 0
            run_lines += 1
            run_end = offset + len(body)
        elif run_start is not None and (body.strip() or not line):
            if run_lines >= min_lines:
                spans.append(Span(run_start, run_end, "CODE"))
            run_start = None
        offset += len(line)
    return resolve_overlaps(spans)


class Contains:
    """Finds URLs and/or code (``kinds``) in a text; ``allowed_domains`` exempts URLs to those hosts.

    Raises GuardrailError for an unknown kind, a domain that is not a string, or
    ``min_code_lines`` under 1.
    """

    name = "contains"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(
        self,
        resources: GuardResources | None = None,
        *,
        kinds: Sequence[str] = KINDS,
        allowed_domains: Sequence[str] = (),
        min_code_lines: int = 2,
    ) -> None:
        if isinstance(kinds, str) or not kinds or any(k not in KINDS for k in kinds):
            raise GuardrailError(f"contains: kinds must be a non-empty list of {', '.join(KINDS)}; got {kinds!r}")
        if isinstance(allowed_domains, str) or not all(isinstance(d, str) and d for d in allowed_domains):
            raise GuardrailError("contains: allowed_domains must be a list of host names, e.g. [example.com]")
        if isinstance(min_code_lines, bool) or not isinstance(min_code_lines, int) or min_code_lines < 1:
            raise GuardrailError(f"contains: min_code_lines must be a whole number >= 1, got {min_code_lines!r}")
        self.kinds = frozenset(kinds)
        self.allowed_domains = tuple(d.lower().strip(".") for d in allowed_domains)
        self.min_code_lines = min_code_lines

    def spans(self, text: str) -> list[Span]:
        found: list[Span] = []
        if "code" in self.kinds:
            found.extend(code_spans(text, self.min_code_lines))
        if "url" in self.kinds:
            urls = url_spans(text, self.allowed_domains)
            # a URL inside a code block is part of the code when both are looked for
            found.extend(u for u in urls if not any(c.start <= u.start and u.end <= c.end for c in found))
        return sorted(found, key=lambda s: s.start)

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        spans = await run_blocking(self.spans, text) if len(text) > THREAD_ABOVE_CHARS else self.spans(text)
        if not spans:
            return PASS
        return Verdict("block", score=1.0, reason=count_reason("contains", spans), spans=tuple(spans))


def register(registry: GuardrailRegistry) -> None:
    registry.add("contains", Contains)
