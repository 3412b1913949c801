"""Wire schemas of a release's shadow stage: its spec, the judged pairs and the gate's verdict.

In shadow, a sampled share of the live requests on a release's route is also sent to the
candidate, after the user's answer has gone out; each pair (baseline answer, candidate answer)
is judged pairwise, and the win rate with its interval decides whether the release may enter
its canary. As part of a release spec::

    shadow:
      sample: 0.2                # share of the route's requests mirrored, (0, 1]
      queue: 100                 # mirrors waiting at most; more are dropped and counted
      budget_micros: 2000000     # the candidate's spend cap, micro-dollars (2 USD)
      min_pairs: 30              # judged pairs before the gate decides
      judges: [route:judge]      # an LLM judge route, or evaluators (`regex:pattern=^\\d+$`)
      min_win_rate: 0.5          # the gate on the win rate (ties count half)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.limits import INT64_MAX, MAX_COUNT

#: A judge naming an LLM route (``route:NAME``) rather than an evaluator.
ROUTE_JUDGE_PREFIX = "route:"

Outcome = Literal["win", "tie", "loss"]
Decision = Literal["pass", "fail", "wait"]


class ShadowSpec(BaseModel):
    """The shadow stage of a release (module docs).

    ``sample``: the share (0, 1] of the route's requests mirrored, picked by hashing the request id;
    ``queue``: mirrors waiting at most (a full queue drops the mirror and counts it);
    ``budget_micros``: the candidate's spend cap in micro-dollars (mirroring stops when it is spent);
    ``min_pairs``: judged pairs before the gate decides; ``judges``: evaluator specs
    (``name:k=v``, scored on each answer alone) or ``route:NAME`` (an LLM judge comparing both
    answers, asked twice with the positions swapped); ``min_win_rate``: the gate: the candidate
    passes once the lower end of its win-rate interval reaches it and fails once the upper end
    falls below it (ties count half a win); ``confidence`` is the interval's level.
    """

    model_config = ConfigDict(extra="forbid")

    sample: float = Field(default=0.1, gt=0, le=1)
    queue: int = Field(default=100, ge=1, le=100_000)
    budget_micros: int = Field(default=1_000_000, ge=0, le=INT64_MAX)
    min_pairs: int = Field(default=30, ge=1, le=MAX_COUNT)
    judges: list[str] = Field(min_length=1, max_length=16)
    min_win_rate: float = Field(default=0.5, ge=0, le=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @field_validator("judges")
    @classmethod
    def _judges(cls, value: list[str]) -> list[str]:
        for judge in value:
            if judge.startswith(ROUTE_JUDGE_PREFIX) and not judge[len(ROUTE_JUDGE_PREFIX) :].strip():
                raise ValueError(f"judge {judge!r} names no route: write route:NAME")
        return value


class ShadowVerdict(BaseModel):
    """What the shadow stage concluded so far.

    ``wins``/``ties``/``losses`` count the candidate's judged pairs; ``win_rate`` is
    ``(wins + ties / 2) / pairs`` and ``win_rate_low``/``win_rate_high`` its Wilson interval at the
    spec's confidence (None before any pair); ``decision`` is the gate's: ``pass`` (enter the canary),
    ``fail`` (roll back) or ``wait`` (fewer than ``min_pairs``, or the interval still straddles
    ``min_win_rate``); ``detail`` says why in words.
    """

    pairs: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    errors: int = 0
    win_rate: float | None = None
    win_rate_low: float | None = None
    win_rate_high: float | None = None
    decision: Decision = "wait"
    detail: str | None = None


class ShadowCounters(BaseModel):
    """What the mirror did for one release since this process started (also on ``/metrics``).

    ``mirrored``: candidate calls made; ``dropped``: mirrors refused because the queue was full;
    ``budget_exhausted``: mirrors skipped because the budget was spent; ``failed``: candidate calls
    that failed; ``judged``: pairs judged; ``spent_micros``: the candidate's spend (micro-dollars,
    from the pairs stored, so it survives a restart).
    """

    mirrored: int = 0
    dropped: int = 0
    budget_exhausted: int = 0
    failed: int = 0
    judged: int = 0
    spent_micros: int = 0


class ShadowStatus(BaseModel):
    """A release's shadow stage as the API shows it: spec, counters and the gate's verdict."""

    release: str
    route: str
    active: bool
    spec: ShadowSpec
    budget_left_micros: int
    counters: ShadowCounters
    verdict: ShadowVerdict


class ShadowPair(BaseModel):
    """One judged pair, as stored (table ``delivery_shadow_pairs``).

    ``baseline_trace_id`` is the user's request, ``candidate_trace_id`` the mirror's (tagged
    ``shadow``); ``outcome`` is the candidate's (None when judging failed: ``error`` says why);
    ``judgements`` holds each judge's verdict in both orders; ``cost_micros`` the candidate's cost.
    """

    id: str
    release: str
    baseline_trace_id: str | None
    candidate_trace_id: str | None
    outcome: Outcome | None
    judgements: list[dict[str, object]] = Field(default_factory=list)
    baseline: str | None = None
    candidate: str | None = None
    cost_micros: int = 0
    error: str | None = None
    created_at: float
