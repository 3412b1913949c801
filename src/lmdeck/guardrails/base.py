"""What every guardrail shares: the text it checks, the verdict it returns, the protocol it follows.

A guardrail looks at one piece of text, a message of the request (stage ``input``) or the
answer (stage ``output``, for a stream the window of text seen so far), and returns a
:class:`Verdict`: what it found (``pass``, ``flag``, ``mask`` with the spans to mask, or
``block``), a score in [0, 1] and a reason a person can read. What the gateway then does
(refuse, mask, tag the trace, send to another route) is the route's configuration, not the
guardrail's::

    class Shouting:
        name = "shouting"
        cost: CostClass = "fast"
        stages: frozenset[Stage] = frozenset({"input", "output"})

        async def check(self, text: str, ctx: GuardContext) -> Verdict:
            if text.isupper():
                return Verdict("block", score=1.0, reason="all caps")
            return PASS

A guardrail never returns the text it found in ``reason``: spans say where it is, and the
trace keeps only their positions and entity types, never the secret itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

_T = TypeVar("_T")

#: ``input``: a message of the request, as it will be sent upstream; ``output``: the answer.
Stage = Literal["input", "output"]

#: What a guardrail found: nothing, something to tag the trace with, spans to mask, or a reason to refuse.
Finding = Literal["pass", "flag", "mask", "block"]

#: ``fast``: pattern matching, microseconds to a millisecond; ``slow``: a model call (embeddings, a judge).
CostClass = Literal["fast", "slow"]


class GuardrailError(ValueError):
    """A guardrail cannot be built from its options; the message names the option and the fix."""


#: The worker threads guardrail checks block in: their own, bounded, so that slow checks queue here
#: instead of taking the event loop's default executor, which the rest of the gateway uses.
GUARDRAIL_THREADS = 8
_executor = ThreadPoolExecutor(max_workers=GUARDRAIL_THREADS, thread_name_prefix="lmdeck-guardrail")


async def run_blocking(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in one of the guardrails' worker threads (``GUARDRAIL_THREADS`` of them), awaited."""
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(fn, *args))


class TooLargeToCheck(Exception):
    """Raised by a check whose text is longer than the guardrail bounds its work to.

    The message names the text's length and the limit (``"123456 characters, over max_chars
    100000"``); the gateway refuses the text (413 on input, 422 on output), whatever ``on_error``
    says, since it was not checked.
    """


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of the checked text that hold one ``entity`` (``EMAIL_ADDRESS``, ``AWS_KEY``…)."""

    start: int
    end: int
    entity: str
    score: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise GuardrailError(f"a span needs 0 <= start < end, got [{self.start}, {self.end})")


@dataclass(frozen=True)
class Verdict:
    """One guardrail's verdict on one text.

    ``score`` is the guardrail's confidence in [0, 1] (1.0 for a pattern match); ``spans``
    are set when ``finding`` is ``mask`` (and may be on ``flag``/``block`` to say where).

    >>> Verdict("block", score=0.97, reason="prompt injection: ignore previous instructions").blocked
    True
    """

    finding: Finding
    score: float = 0.0
    reason: str = ""
    spans: tuple[Span, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise GuardrailError(f"a verdict's score must be in [0, 1], got {self.score!r}")
        if self.finding == "mask" and not self.spans:
            raise GuardrailError("a mask verdict needs the spans to mask")

    @property
    def passed(self) -> bool:
        return self.finding == "pass"

    @property
    def blocked(self) -> bool:
        return self.finding == "block"


#: The verdict of a guardrail that found nothing.
PASS = Verdict("pass")


@dataclass(frozen=True)
class GuardContext:
    """What a guardrail may know about the text besides the text itself.

    ``messages`` are the request's chat messages (OpenAI shape) as they will be sent; ``role``
    is the role of the message being checked (``None`` for an answer); ``final`` is False
    while a stream's answer is still arriving (the text is the window seen so far).
    """

    stage: Stage
    route: str = ""
    role: str | None = None
    messages: Sequence[Mapping[str, Any]] = ()
    final: bool = True


#: Sentence embeddings of the texts, in order: unit vectors (the bundled all-MiniLM-L6-v2, 384 floats each).
Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]

#: The answer text of a chat completion of ``messages`` (OpenAI shape) on the gateway route ``route``.
Complete = Callable[[str, Sequence[Mapping[str, Any]]], Awaitable[str]]


@dataclass(frozen=True)
class GuardResources:
    """What the gateway lends a guardrail when it builds one: models it may call.

    A guardrail that needs one which is ``None`` (no local model, no route to call) raises
    :class:`GuardrailError` when it is built, naming what to configure.
    """

    embed: Embed | None = None
    complete: Complete | None = None


@runtime_checkable
class Guardrail(Protocol):
    """A check on one text. Built once per configured instance, then called concurrently."""

    name: str
    cost: CostClass
    stages: frozenset[Stage]

    async def check(self, text: str, ctx: GuardContext) -> Verdict: ...


@dataclass(frozen=True)
class GuardrailInfo:
    """What ``lmdeck guardrails list`` shows of a registered guardrail type."""

    name: str
    description: str
    cost: CostClass
    stages: frozenset[Stage]
    options: Mapping[str, str] = field(default_factory=dict)
