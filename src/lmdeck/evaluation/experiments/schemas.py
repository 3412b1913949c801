"""What an experiment is: which traffic it covers, its variants and weights, how it is judged.

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

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.access import Visibility
from lmdeck.protocol.limits import INT64_MAX, MAX_COUNT

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
