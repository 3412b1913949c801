"""Wire schemas of progressive delivery: releases (``/api/releases``), their canary strategy and analysis.

A release puts a candidate bundle for one route in front of a growing share of live traffic,
checks it against the baseline (what the route serves now) at every analysis interval, and
promotes it, holds it, or rolls it back. As applied (``kind: Release``) or posted::

    name: reply-v3
    route: support                 # the route whose traffic the release covers
    prompt: support-reply          # the prompt whose `label` the candidate's prompt_version replaces
    label: production              # the prompt label (and model alias) a promotion moves
    sticky: user                   # hash the user id (or `conversation`) to pick baseline or candidate
    candidate: {prompt_version: 3, params: {temperature: 0.2}}   # and/or model: bot@4, route: other
    strategy: {steps: [5, 25, 50, 100], interval_s: 300, min_samples: 50, deadline_s: 86400}
    metrics:
      - {name: error_rate, tolerance: 0.01}            # direction defaults per metric
      - {name: latency_p95, tolerance: 250}            # milliseconds
      - {name: "score:contains", direction: higher, tolerance: 0.05}
    hard_guards: [{metric: error_rate, ceiling: 0.2}]

The state machine (:mod:`lmdeck.delivery.machine`)::

    pending -> shadow -> canary (step 0 .. k) -> promoted
                 |            |
                 +------------+-> rolled_back | aborted
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.access import Visibility
from lmdeck.protocol.evaluation import NAME
from lmdeck.protocol.limits import INT64_MAX, MAX_COUNT
from lmdeck.protocol.shadow import ShadowSpec

ReleaseState = Literal["pending", "shadow", "canary", "promoted", "rolled_back", "aborted"]
#: States a release never leaves (but ``promoted``, which a rollback may still undo).
FINISHED: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted"})
#: States in which the release serves live traffic (or mirrors it) and the controller analyses it.
ACTIVE: frozenset[str] = frozenset({"shadow", "canary"})

Variant = Literal["baseline", "candidate"]

#: What a release's analysis compares, and which way is better when not said.
_METRIC = re.compile(
    r"^(error_rate|latency_p95|latency|ttft|cost|guardrail_block_rate|score:[\w.\-]+|feedback:[\w.\-]+)$"
)
_LOWER_IS_BETTER = ("error_rate", "latency_p95", "latency", "ttft", "cost", "guardrail_block_rate")

#: Request parameters a candidate may set for the route (sampling and length, not the messages).
CANDIDATE_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
    }
)


class CandidateSpec(BaseModel):
    """What the candidate changes about a covered request (the same shape as an experiment's variant).

    ``prompt_version`` replaces the release's ``prompt`` at its ``label``; ``model`` (``name@version``)
    is served in place of the route's registry alias; ``route`` sends the request to another route;
    ``params`` sets request parameters (:data:`CANDIDATE_PARAMS`).
    """

    model_config = ConfigDict(extra="forbid")

    prompt_version: int | None = Field(default=None, ge=1, le=INT64_MAX)
    model: str | None = Field(default=None, description="registry model version, name@version")
    route: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str | None) -> str | None:
        if value is not None:
            name, sep, pointer = value.partition("@")
            if not sep or not name or not pointer:
                raise ValueError(f"model {value!r} must name a registry version: name@3")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - CANDIDATE_PARAMS)
        if unknown:
            raise ValueError(f"params {unknown} cannot be set by a release: use {sorted(CANDIDATE_PARAMS)}")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> CandidateSpec:
        if self.prompt_version is None and self.model is None and self.route is None and not self.params:
            raise ValueError("a candidate changes something: set prompt_version, model, route or params")
        return self


class Strategy(BaseModel):
    """How the candidate's share grows: ``steps`` (percent of covered traffic, increasing, ending at 100),
    each held at least ``interval_s`` seconds and until both variants have ``min_samples`` requests
    in the step; ``deadline_s`` after the start an unfinished release is aborted; ``alpha`` is the
    sequential tests' false-alarm rate over the whole release (``mixture_scale``: the mSPRT's mixing sd).
    """

    model_config = ConfigDict(extra="forbid")

    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0], min_length=1, max_length=20)
    interval_s: float = Field(default=300.0, gt=0, le=7 * 86400)
    min_samples: int = Field(default=50, ge=2, le=MAX_COUNT)
    deadline_s: float = Field(default=86400.0, gt=0, le=365 * 86400)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    mixture_scale: float = Field(default=0.2, gt=0, le=10)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in value):
            raise ValueError("steps are percentages in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("steps must increase")
        if value[-1] != 100:
            raise ValueError("the last step is 100 (the candidate serves all the route's traffic before promotion)")
        return value


class MetricSpec(BaseModel):
    """One metric of the analysis: the candidate fails it when it is worse than the baseline by more
    than ``tolerance`` (in the metric's unit: a rate, milliseconds, US dollars, a score) with the
    sequential test's confidence; it passes when it is not worse by ``tolerance`` with that confidence.

    ``name``: ``error_rate``, ``latency_p95`` / ``latency`` (ms), ``ttft`` (ms), ``cost`` (per request,
    USD), ``guardrail_block_rate``, ``score:<evaluator>`` (online evaluation), ``feedback:<name>``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    direction: Literal["lower", "higher"] | None = None
    tolerance: float = Field(default=0.0, ge=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _METRIC.match(value):
            raise ValueError(
                "metric is error_rate, latency_p95, latency, ttft, cost, guardrail_block_rate, "
                "score:<evaluator> or feedback:<name>"
            )
        return value

    @property
    def better(self) -> Literal["lower", "higher"]:
        if self.direction is not None:
            return self.direction
        return "lower" if self.name in _LOWER_IS_BETTER else "higher"


class HardGuard(BaseModel):
    """A ceiling the candidate may never cross: once it has ``min_samples`` requests in the release
    and its observed ``metric`` exceeds ``ceiling``, it is rolled back at once, whatever the baseline does."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["error_rate", "guardrail_block_rate"] = "error_rate"
    ceiling: float = Field(gt=0, le=1)
    min_samples: int = Field(default=10, ge=1, le=MAX_COUNT)


def _default_metrics() -> list[MetricSpec]:
    return [MetricSpec(name="error_rate", tolerance=0.02)]


class ReleaseSpec(BaseModel):
    """A candidate bundle for one route, its strategy and the evidence that decides it (module docs)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    route: str = Field(min_length=1, max_length=200)
    prompt: str | None = Field(default=None, description="the prompt whose label the candidate's version replaces")
    label: str = Field(default="production", description="the prompt label or model alias a promotion moves")
    sticky: Literal["user", "conversation"] = "user"
    candidate: CandidateSpec
    strategy: Strategy = Field(default_factory=Strategy)
    metrics: list[MetricSpec] = Field(default_factory=_default_metrics, min_length=1, max_length=32)
    hard_guards: list[HardGuard] = Field(default_factory=list, max_length=8)
    shadow: ShadowSpec | None = None
    description: str | None = Field(default=None, max_length=2000)
    team: str | None = None
    visibility: Visibility | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReleaseSpec:
        if self.candidate.prompt_version is not None and self.prompt is None:
            raise ValueError("candidate.prompt_version needs `prompt`: the prompt whose label it replaces")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
        return self


class Baseline(BaseModel):
    """What served the route when the release started: the pointers a rollback restores."""

    prompt: str | None = None
    prompt_version: int | None = None
    model: str | None = None
    model_version: int | None = None
    label: str = "production"


class MetricResult(BaseModel):
    """One metric's comparison at one analysis: candidate minus baseline, its always-valid interval."""

    name: str
    better: Literal["lower", "higher"]
    tolerance: float
    baseline: float | None
    candidate: float | None
    baseline_n: int
    candidate_n: int
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    verdict: Literal["pass", "fail", "inconclusive", "waiting"]


class Analysis(BaseModel):
    """One analysis of a release: per-metric results, guards and the decision taken."""

    at: float
    step: int
    percent: float
    baseline_requests: int
    candidate_requests: int
    metrics: list[MetricResult] = Field(default_factory=list)
    guards: list[dict[str, Any]] = Field(default_factory=list)
    decision: Literal["promote", "hold", "rollback", "abort", "wait"]
    reason: str


class ReleaseEvent(BaseModel):
    """One transition in a release's history, with the evidence behind it."""

    release: str
    at: float
    action: str
    from_state: ReleaseState | None
    to_state: ReleaseState
    step: int | None = None
    percent: float | None = None
    actor: str
    reason: str | None = None
    evidence: dict[str, Any] | None = None


class ReleaseStatus(BaseModel):
    """A release as the API shows it: its spec, state, current step and the last analysis."""

    spec: ReleaseSpec
    state: ReleaseState
    step: int | None = None
    percent: float = 0.0
    baseline: Baseline | None = None
    created_at: float
    created_by: str | None = None
    started_at: float | None = None
    step_started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    last_analysis: Analysis | None = None
    team_id: str | None = None
    visibility: Visibility = "team"


class ReleaseAction(BaseModel):
    """The body of ``POST /api/releases/{name}/promote|rollback|abort``."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
