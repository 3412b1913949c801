"""Pairwise judging of (baseline answer, candidate answer), positions swapped to cancel order bias.

A judge is either an evaluator (``regex:pattern=...``, any registered one that needs no expected
answer), which scores each answer on its own, so order cannot sway it: the higher score wins; or
``route:NAME``, an LLM judge asked through the gateway which of two answers is better, once with the
baseline as ``A`` and once with the candidate as ``A``. The two orders agreeing decide the pair; a
judge that disagrees with itself when the answers swap places has shown only its position bias, and
the pair is a tie. With several judges the pair goes the way most of them decided (a tie otherwise)::

    judge = PairwiseJudge(["route:judge", "json_valid"], evaluators, inference)
    outcome = await judge.judge("What is 2+2?", baseline="4", candidate="Four.")
    outcome.outcome          # "win" | "tie" | "loss" (the candidate's)
    outcome.judgements       # [{"judge": "route:judge", "orders": ["A", "B"], "outcome": "win"}, ...]

Raises :class:`JudgeError` when an LLM judge's reply holds no verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lmdeck.evaluation.base import Evaluator, EvaluatorContext, InferenceClient, Sample
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.protocol.evaluation import EvaluatorError, EvaluatorSpec
from lmdeck.protocol.shadow import ROUTE_JUDGE_PREFIX, Outcome

PAIRWISE_INSTRUCTION = (
    "Two assistants answered the same request. Decide which answer is better: more correct, more "
    "helpful, more faithful to the request. Judge the content only, not the order or the length.\n\n"
    "Request:\n{request}\n\n[Answer A]\n{first}\n[End of answer A]\n\n[Answer B]\n{second}\n"
    "[End of answer B]\n\nEnd your reply with one last line: `VERDICT: A`, `VERDICT: B` or `VERDICT: TIE`."
)
_VERDICT = re.compile(r"VERDICT\s*:\s*\**\s*(A|B|TIE)\b", re.IGNORECASE)
_SIGN: dict[Outcome, int] = {"win": 1, "tie": 0, "loss": -1}


class JudgeError(EvaluatorError):
    """A judge gave no usable verdict (an LLM judge's reply without ``VERDICT: A|B|TIE``)."""


def read_choice(reply: str) -> str:
    """``A``, ``B`` or ``TIE`` from a judge's reply (its last ``VERDICT:`` line); raises :class:`JudgeError`."""
    found = _VERDICT.findall(reply)
    if not found:
        raise JudgeError(f"the judge's reply holds no `VERDICT: A|B|TIE` line: {reply[-200:]!r}")
    return str(found[-1]).upper()


def swapped_outcome(first: str, second: str) -> Outcome:
    """The candidate's outcome from two choices: ``first`` with the baseline as A, ``second`` with it as B.

    >>> swapped_outcome("B", "A"), swapped_outcome("A", "A"), swapped_outcome("TIE", "B")
    ('win', 'tie', 'tie')
    """
    as_first: Outcome = {"A": "loss", "B": "win"}.get(first, "tie")  # type: ignore[assignment]
    as_second: Outcome = {"A": "win", "B": "loss"}.get(second, "tie")  # type: ignore[assignment]
    return as_first if as_first == as_second else "tie"


def combine(outcomes: list[Outcome]) -> Outcome:
    """The majority of the judges' outcomes; a tie when they balance."""
    total = sum(_SIGN[o] for o in outcomes)
    return "win" if total > 0 else "loss" if total < 0 else "tie"


@dataclass(frozen=True)
class PairJudgement:
    """The candidate's outcome on one pair, and each judge's part in it."""

    outcome: Outcome
    judgements: list[dict[str, Any]] = field(default_factory=list)


class PairwiseJudge:
    """Judges pairs with the given judges (module docs).

    Raises ``EvaluatorError`` at construction for an unknown evaluator, bad options, or one that needs
    an expected answer (a live request has none).
    """

    def __init__(self, judges: list[str], registry: EvaluatorRegistry, inference: InferenceClient) -> None:
        self.inference = inference
        self.routes: list[str] = []
        self.evaluators: list[Evaluator] = []
        for text in judges:
            if text.startswith(ROUTE_JUDGE_PREFIX):
                self.routes.append(text[len(ROUTE_JUDGE_PREFIX) :].strip())
                continue
            evaluator = registry.create(EvaluatorSpec.parse(text), EvaluatorContext(inference))
            if evaluator.requires_reference:
                raise EvaluatorError(
                    f"judge {text!r} needs an expected answer, which a live request does not have: give it "
                    "its options (regex:pattern=...) or use an LLM judge (route:NAME)"
                )
            self.evaluators.append(evaluator)

    async def judge(self, request: str, baseline: str, candidate: str) -> PairJudgement:
        outcomes: list[Outcome] = []
        judgements: list[dict[str, Any]] = []
        for route in self.routes:
            first = await self._ask(route, request, baseline, candidate)
            second = await self._ask(route, request, candidate, baseline)
            outcome = swapped_outcome(first, second)
            outcomes.append(outcome)
            judgements.append({"judge": f"{ROUTE_JUDGE_PREFIX}{route}", "orders": [first, second], "outcome": outcome})
        for evaluator in self.evaluators:
            base = await evaluator.evaluate(Sample(output=baseline, input=request))
            cand = await evaluator.evaluate(Sample(output=candidate, input=request))
            b, c = base.value or 0.0, cand.value or 0.0
            outcome = "win" if c > b else "loss" if c < b else "tie"
            outcomes.append(outcome)
            judgements.append({"judge": evaluator.name, "scores": [base.value, cand.value], "outcome": outcome})
        return PairJudgement(combine(outcomes), judgements)

    async def _ask(self, route: str, request: str, first: str, second: str) -> str:
        prompt = PAIRWISE_INSTRUCTION.format(request=request, first=first, second=second)
        body = {"model": route, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        reply = await self.inference.chat(body)
        return read_choice(reply.text)
