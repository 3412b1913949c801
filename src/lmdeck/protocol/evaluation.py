"""Wire schemas of the evaluation API: eval runs (``/api/evaluation/runs``), online rules
(``/api/evaluation/online-rules``), experiments (``/api/experiments``) and feedback (``/api/feedback``),
and the evaluator specs they name.

An evaluator on the command line is ``[key=]name[:options]``, where options are a JSON
object or ``k=v`` pairs joined by ``&``; values are read as JSON when they parse::

    >>> EvaluatorSpec.parse("numeric:abs_tol=0.5").options
    {'abs_tol': 0.5}
    >>> EvaluatorSpec.parse("strict=regex:pattern=^[0-9]+$").key
    'strict'

An experiment, as declared in the config file or posted::

    name: reply-v2
    prompt: support-reply          # requests rendering this prompt (or `route: support`)
    label: production              # the label (or model alias) a promotion moves
    sticky: user                   # hash the user id (or `conversation`) to pick a variant
    metric: feedback:thumbs        # or score:<evaluator>, error_rate, latency, cost
    design: sequential             # always-valid mSPRT (default), or fixed_horizon with sample_size
    variants:
      - {name: control, weight: 50}                     # unchanged
      - {name: v3, weight: 50, prompt_version: 3}       # and/or model: support-bot@4, route: other
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.access import Visibility
from lmdeck.protocol.limits import INT64_MAX, MAX_COUNT, MAX_TOKENS
from lmdeck.protocol.traces import TraceRecord


class EvaluatorError(ValueError):
    """An evaluator cannot be built or run as configured; the message says how to fix it."""


_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class EvaluatorSpec(BaseModel):
    """One evaluator to run: ``name`` in the registry, its ``options``, and an optional ``alias``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=_NAME.pattern)
    options: dict[str, Any] = Field(default_factory=dict)
    alias: str | None = Field(default=None, pattern=_NAME.pattern)

    @property
    def key(self) -> str:
        """The name its scores are stored and gated under."""
        return self.alias or self.name

    @classmethod
    def parse(cls, text: str) -> EvaluatorSpec:
        text = text.strip()
        alias = None
        head, eq, rest = text.partition("=")
        if eq and ":" not in head and _NAME.match(head):
            alias, text = head, rest
        name, _, raw = text.partition(":")
        if not _NAME.match(name):
            raise EvaluatorError(f"{text!r} is not an evaluator: write name, name:k=v&k=v or name:{{json}}")
        options: dict[str, Any] = {}
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                loaded = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EvaluatorError(f"options of evaluator {name!r} are not valid JSON: {exc}") from None
            if not isinstance(loaded, dict):
                raise EvaluatorError(f"options of evaluator {name!r} must be a JSON object")
            options = loaded
        elif raw:
            for pair in raw.split("&"):
                key, eq, value = pair.partition("=")
                if not eq or not _NAME.match(key.strip()):
                    raise EvaluatorError(f"option {pair!r} of evaluator {name!r} must look like key=value")
                options[key.strip()] = _value(value)
        return cls(name=name, options=options, alias=alias)

    @classmethod
    def parse_many(cls, texts: list[str]) -> list[EvaluatorSpec]:
        """Specs from ``--evaluators a,b`` lists (plain names split on commas) and ``-e spec`` items."""
        specs: list[EvaluatorSpec] = []
        for text in texts:
            parts = [text] if ":" in text else [p for p in text.split(",") if p.strip()]
            specs.extend(cls.parse(p) for p in parts)
        return specs

    def __str__(self) -> str:
        prefix = f"{self.alias}=" if self.alias else ""
        suffix = f":{json.dumps(self.options, sort_keys=True)}" if self.options else ""
        return f"{prefix}{self.name}{suffix}"


# -- eval runs ---------------------------------------------------------------------------------

_REF = re.compile(r"^[A-Za-z0-9][\w.\-/]*(@[\w.\-]+)?$")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@pointer`` → (name, pointer); a bare name gives (name, None)."""
    name, _, pointer = ref.partition("@")
    return name, pointer or None


class RunRequest(BaseModel):
    """``POST /api/evaluation/runs``: what to run.

    ``dataset`` is ``name@version`` (or a bare name for its newest version);
    ``prompt`` is ``name@version`` or ``name@label``; ``route`` the model to call (it may be
    left out when the prompt is bound to a route); ``model`` a registry model version
    (``name@version`` or ``name@alias``) served in place of the route's registry target.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    prompt: str | None = None
    route: str | None = None
    model: str | None = None
    evaluators: list[EvaluatorSpec | str] = Field(min_length=1)
    name: str | None = Field(default=None, max_length=200)
    concurrency: int = Field(default=4, ge=1, le=64)
    max_rows: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    team: str | None = Field(default=None, description="the owning team (admins only; default: the caller's)")
    visibility: Visibility | None = Field(default=None, description="'team' (default) or 'shared'")
    runner: Literal["local", "ray"] = Field(
        default="local",
        description="where the rows run: `local` (in the gateway) or `ray` (a Ray job; needs "
        "`evaluation.ray_gateway_url`)",
    )

    @field_validator("dataset", "prompt", "model")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF.match(value):
            raise ValueError(f"{value!r} is not a registry reference: write name@version or name@label")
        return value

    @field_validator("evaluators")
    @classmethod
    def _specs(cls, value: list[EvaluatorSpec | str]) -> list[EvaluatorSpec | str]:
        try:
            parsed: list[EvaluatorSpec | str] = list(EvaluatorSpec.parse_many([v for v in value if isinstance(v, str)]))
            return parsed + [v for v in value if isinstance(v, EvaluatorSpec)]
        except EvaluatorError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _target(self) -> RunRequest:
        if self.prompt is None and self.route is None:
            raise ValueError("give a `prompt` (name@version) or a `route` to run the dataset through")
        return self

    def specs(self) -> list[EvaluatorSpec]:
        return [s if isinstance(s, EvaluatorSpec) else EvaluatorSpec.parse(s) for s in self.evaluators]


class RowResult(BaseModel):
    """One dataset row's output, scores and cost."""

    idx: int
    input: Any = None
    expected: Any = None
    output: str | None = None
    scores: dict[str, dict[str, Any]] = Field(default_factory=dict)
    latency_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    trace_id: str | None = None
    error: str | None = None

    def value(self, key: str) -> float | None:
        score = self.scores.get(key)
        value = score.get("value") if score else None
        return float(value) if value is not None else None


# -- online rules ------------------------------------------------------------------------------
# Online rules: which live traces to score, how many of them, and with what.
#
#     rule = OnlineRule(name="json-replies", filter=TraceFilter(route="extract"), sample_rate=0.1,
#                       evaluators=["json_valid"])
#     rule.matches(record) and rule.sampled(record)
#
# Sampling hashes the trace id, so the decision is the same in every process and on every
# replay, and a rate of 0.1 scores 10% of the matching traces (within sampling noise).

_RULE_NAME = r"^[A-Za-z0-9][\w.\-]{0,127}$"


class TraceFilter(BaseModel):
    """Every field given must match the trace; an empty filter matches every trace."""

    model_config = ConfigDict(extra="forbid")

    route: str | None = None
    prompt: str | None = None
    prompt_version: int | None = Field(default=None, ge=1, le=INT64_MAX)
    model: str | None = None
    tag: str | None = None
    team_id: str | None = None
    status: str = Field(default="ok", pattern="^(ok|error|any)$")

    def matches(self, record: TraceRecord) -> bool:
        checks = (
            (self.route, record.route),
            (self.prompt, record.prompt_name),
            (self.prompt_version, record.prompt_version),
            (self.model, record.upstream_model),
            (self.team_id, record.team_id),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        if self.tag is not None and self.tag not in record.tags:
            return False
        failed = record.status_code >= 400
        return self.status == "any" or (self.status == "error") == failed


def sample_point(trace_id: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the trace id and the rule."""
    digest = hashlib.sha256(f"{salt}:{trace_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class OnlineRule(BaseModel):
    """Score ``sample_rate`` of the live traces matching ``filter`` with ``evaluators``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_RULE_NAME)
    filter: TraceFilter = Field(default_factory=TraceFilter)
    sample_rate: float = Field(ge=0.0, le=1.0, description="share of matching traces scored, 0..1 (or '10%')")
    evaluators: list[EvaluatorSpec | str] = Field(min_length=1)
    enabled: bool = True

    @field_validator("sample_rate", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100.0
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage such as '10%'") from None
        return value

    @field_validator("evaluators")
    @classmethod
    def _specs(cls, value: list[EvaluatorSpec | str]) -> list[EvaluatorSpec | str]:
        try:
            return [EvaluatorSpec.parse(v) if isinstance(v, str) else v for v in value]
        except EvaluatorError as exc:
            raise ValueError(str(exc)) from None

    def specs(self) -> list[EvaluatorSpec]:
        return [s if isinstance(s, EvaluatorSpec) else EvaluatorSpec.parse(s) for s in self.evaluators]

    def matches(self, record: TraceRecord) -> bool:
        return self.enabled and self.filter.matches(record)

    def sampled(self, record: TraceRecord) -> bool:
        return self.sample_rate > 0 and sample_point(record.id, self.name) < self.sample_rate


def rule_name_ok(name: str) -> bool:
    return re.match(_RULE_NAME, name) is not None


# -- experiments -------------------------------------------------------------------------------

NAME = r"^[A-Za-z0-9][\w.\-]{0,127}$"
_METRIC = re.compile(r"^(error_rate|latency|cost|feedback:[\w.\-]+|score:[\w.\-]+)$")

#: Metrics where a smaller value is better.
LOWER_IS_BETTER = frozenset({"error_rate", "latency", "cost"})


class VariantSpec(BaseModel):
    """One arm: what it changes about the request (nothing, for a control)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    weight: float = Field(gt=0, le=1e6)
    prompt_version: int | None = Field(default=None, ge=1, le=INT64_MAX)
    model: str | None = Field(default=None, description="registry model version, name@version")
    route: str | None = Field(default=None, min_length=1)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str | None) -> str | None:
        if value is not None:
            name, sep, pointer = value.partition("@")
            if not sep or not name or not pointer:
                raise ValueError(f"model {value!r} must name a registry version: name@3 (or name@alias)")
        return value

    @property
    def is_control(self) -> bool:
        return self.prompt_version is None and self.model is None and self.route is None


class ExperimentSpec(BaseModel):
    """An experiment on a route or a prompt, split between weighted variants."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    route: str | None = None
    prompt: str | None = None
    label: str = Field(default="production", description="the prompt label or model alias that promote moves")
    sticky: Literal["user", "conversation"] = "user"
    metric: str = "error_rate"
    min_samples: int = Field(default=30, ge=2, le=MAX_COUNT, description="per variant, before a verdict")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    design: Literal["sequential", "fixed_horizon"] = Field(
        default="sequential",
        description="sequential: an always-valid test, read at any time; fixed_horizon: a classical test "
        "whose verdict waits until every variant has `sample_size` observations",
    )
    sample_size: int | None = Field(
        default=None, ge=2, le=MAX_COUNT, description="per variant; required by (and only for) design: fixed_horizon"
    )
    mixture_scale: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description="sequential design: the mixing distribution's sd, in standard deviations of the metric",
    )
    variants: list[VariantSpec] = Field(min_length=2, max_length=16)
    description: str | None = None

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not _METRIC.match(value):
            raise ValueError("metric must be error_rate, latency, cost, feedback:<name> or score:<evaluator>")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if (self.route is None) == (self.prompt is None):
            raise ValueError("an experiment covers a `route` or a `prompt` (exactly one of them)")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.design == "fixed_horizon" and self.sample_size is None:
            raise ValueError(
                "design fixed_horizon needs `sample_size` (observations per variant, chosen before the start); "
                "or use design: sequential, which may be read at any time"
            )
        if self.design == "sequential" and self.sample_size is not None:
            raise ValueError("`sample_size` applies to design: fixed_horizon; remove it or set that design")
        if self.route is not None and any(v.prompt_version is not None for v in self.variants):
            raise ValueError("prompt_version variants need an experiment on a `prompt`")
        return self

    @property
    def control(self) -> VariantSpec:
        """The variant the others are compared with: the first one."""
        return self.variants[0]

    def variant(self, name: str) -> VariantSpec | None:
        return next((v for v in self.variants if v.name == name), None)


class ExperimentRequest(ExperimentSpec):
    """``POST /api/experiments``: an experiment, and who owns it (see :mod:`lmdeck.policy.ownership`)."""

    team: str | None = Field(default=None, description="the owning team (admins only; default: the caller's)")
    visibility: Visibility | None = Field(default=None, description="'team' (default) or 'shared'")

    def spec(self) -> ExperimentSpec:
        return ExperimentSpec.model_validate(self.model_dump(exclude={"team", "visibility"}))


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str | None = Field(default=None, description="default: the verdict's winner")
    reason: str | None = Field(default=None, max_length=1000)


# -- feedback ----------------------------------------------------------------------------------


class FeedbackRequest(BaseModel):
    """Feedback on a trace: a value (thumbs up = 1, down = 0, or a score), a label, a comment.

    ``trace_id`` may be the trace's id, the ``x-request-id`` lmdeck answered with, or lmdeck's W3C trace id.
    """

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="user_feedback", min_length=1, max_length=128, pattern=r"^[\w.\-:]+$")
    value: float | None = None
    label: str | None = Field(default=None, max_length=128)
    comment: str | None = Field(default=None, max_length=4000)
    correction: Any = Field(
        default=None, description="the answer the model should have given (text or JSON); a dataset's expected output"
    )
    source: Literal["user", "api", "judge"] = "api"

    @field_validator("value", mode="before")
    @classmethod
    def _thumbs(cls, value: object) -> object:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, str) and value.lower() in ("up", "down"):
            return 1.0 if value.lower() == "up" else 0.0
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.value is None and self.label is None and not self.comment and self.correction is None:
            raise ValueError(
                "send a `value` (e.g. 1 for thumbs up, 0 for down), a `label`, a `comment` or a `correction`"
            )
        return self
