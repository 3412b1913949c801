"""Confidence checks: does a cheaper target's answer stand, or does the cascade escalate?

A check judges one answer (a chat or legacy completion) and returns a :class:`Verdict`. The
gateway ships the ``logprob`` check; checks that need a higher layer (an evaluator from
:mod:`lmdeck.evaluation`) are added by the app through :meth:`ConfidenceChecks.add`::

    checks = ConfidenceChecks.builtin()
    checks.add("evaluator", lambda config: MyEvaluatorCheck(config))
    check = checks.create(CascadeCheckConfig(kind="logprob", min_logprob=-0.3))
    verdict = await check.judge(request, response)      # Verdict(passed=True, reason="...", score=-0.12)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest
from lmdeck.protocol.chat import ChatCompletionResponse
from lmdeck.settings import CascadeCheckConfig, ConfigError


@dataclass(frozen=True)
class Verdict:
    """A check's judgement: ``passed``, a reason a person can read, and the score it compared (or None)."""

    passed: bool
    reason: str
    score: float | None = None


class ConfidenceCheck(Protocol):
    """Judges one answer. ``needs_logprobs``: the target must be asked for token log-probabilities."""

    name: str
    needs_logprobs: bool

    async def judge(self, request: Any, response: BaseModel) -> Verdict:
        """The verdict on ``response`` (a whole answer to ``request``); never raises for a bad answer."""
        ...


CheckFactory = Callable[[CascadeCheckConfig], ConfidenceCheck]


def answer_texts(response: BaseModel) -> list[str]:
    """Each choice's text (chat: the message content; legacy: the text); '' where there is none."""
    texts = []
    for choice in getattr(response, "choices", []):
        if isinstance(response, ChatCompletionResponse):
            content = choice.message.get("content")
            texts.append(content if isinstance(content, str) else "")
        elif isinstance(choice, dict):
            text = choice.get("text")
            texts.append(text if isinstance(text, str) else "")
    return texts


def _token_logprobs(choice: Any) -> Iterator[float] | None:
    logprobs = choice.logprobs if not isinstance(choice, dict) else choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):  # chat
        return (float(t["logprob"]) for t in logprobs["content"] if isinstance(t, dict) and "logprob" in t)
    if isinstance(logprobs.get("token_logprobs"), list):  # legacy completions
        return (float(v) for v in logprobs["token_logprobs"] if v is not None)
    return None


class LogprobCheck:
    """Passes when every choice's token log-probabilities, aggregated, reach ``min_logprob``.

    >>> import asyncio
    >>> from lmdeck.protocol.chat import ChatChoice
    >>> check = LogprobCheck(CascadeCheckConfig(min_logprob=-0.5))
    >>> answer = ChatCompletionResponse(id="x", created=0, model="m", choices=[ChatChoice(
    ...     message={"role": "assistant", "content": "19"},
    ...     logprobs={"content": [{"token": "1", "logprob": -0.1}, {"token": "9", "logprob": -0.3}]})])
    >>> asyncio.run(check.judge(None, answer)).score
    -0.2
    """

    name = "logprob"
    needs_logprobs = True

    def __init__(self, config: CascadeCheckConfig) -> None:
        self.min_logprob = config.min_logprob
        self.aggregate = config.aggregate

    async def judge(self, request: Any, response: BaseModel) -> Verdict:
        scores: list[float] = []
        for choice in getattr(response, "choices", []):
            values = _token_logprobs(choice)
            if values is None:
                return Verdict(False, "the answer carries no token log-probabilities")
            tokens = [v for v in values if math.isfinite(v)]
            if not tokens:
                return Verdict(False, "the answer has no tokens")
            scores.append(sum(tokens) / len(tokens) if self.aggregate == "mean" else min(tokens))
        if not scores:
            return Verdict(False, "the answer has no choices")
        score = round(min(scores), 4)
        if score >= self.min_logprob:
            return Verdict(True, f"{self.aggregate} token logprob {score} >= {self.min_logprob}", score)
        return Verdict(False, f"{self.aggregate} token logprob {score} < {self.min_logprob}", score)


class ConfidenceChecks:
    """Check factories by kind (``CascadeCheckConfig.kind``).

    >>> ConfidenceChecks.builtin().kinds()
    ['logprob']
    """

    def __init__(self) -> None:
        self._factories: dict[str, CheckFactory] = {}

    def add(self, kind: str, factory: CheckFactory) -> None:
        self._factories[kind] = factory

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def create(self, config: CascadeCheckConfig) -> ConfidenceCheck:
        """The check ``config`` describes; :class:`ConfigError` naming the known kinds when none is registered."""
        try:
            factory = self._factories[config.kind]
        except KeyError:
            known = ", ".join(self.kinds())
            raise ConfigError(
                f"no confidence check of kind {config.kind!r} in this process: use one of {known}"
            ) from None
        return factory(config)

    @classmethod
    def builtin(cls) -> ConfidenceChecks:
        checks = cls()
        checks.add("logprob", LogprobCheck)
        return checks


def with_logprobs(request: Any) -> Any:
    """``request`` asking for token log-probabilities (chat: ``logprobs: true``; legacy: ``logprobs: 0``)."""
    if isinstance(request, ChatCompletionRequest) and not request.logprobs:
        return request.model_copy(update={"logprobs": True})
    if isinstance(request, CompletionRequest) and request.logprobs is None:
        return request.model_copy(update={"logprobs": 0})
    return request


def without_logprobs(response: BaseModel) -> BaseModel:
    """``response`` with its choices' log-probabilities removed (the client did not ask for them)."""
    choices = [
        {**c, "logprobs": None} if isinstance(c, dict) else c.model_copy(update={"logprobs": None})
        for c in getattr(response, "choices", [])
    ]
    return response.model_copy(update={"choices": choices})
