"""Wire schemas of alerting: rules, notification channels, silences and the incidents they produce.

The same shapes are written in ``lmdeck.yaml`` under ``alerts:`` (synced by ``lmdeck apply``), sent to
``/api/alerts/...`` and printed by ``lmdeck alerts``::

    alerts:
      rules:
        - name: chat-errors
          kind: threshold                 # threshold | anomaly | burn_rate | budget_forecast
          signal: {metric: error_rate, window_s: 300, where: {route: chat}, by: [target]}
          op: ">"
          threshold: 0.2
          clear_threshold: 0.05           # hysteresis: resolves only once at or below this
          for_s: 120                      # the condition holds this long before it fires
          channels: [ops-hook, ops-mail]
          actions: [{type: open_breaker}]
      channels:
        - {name: ops-hook, type: webhook, url: "https://hooks.example/lmdeck", secret: {"$env": "HOOK_SECRET"}}
        - {name: ops-mail, type: email, smtp_host: mail.example, to: [oncall@example.com]}
      silences:
        - {matchers: {rule: chat-errors}, ends_at: "2026-12-01T08:00:00Z", comment: "upstream maintenance"}
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.headers import check_url
from lmdeck.protocol.limits import INT64_MAX, MAX_EPOCH_SECONDS, Int64
from lmdeck.protocol.secrets import SecretReference

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)

RuleKind = Literal["threshold", "anomaly", "burn_rate", "budget_forecast"]
Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
AlertState = Literal["pending", "firing", "acknowledged", "resolved"]

#: The metrics a signal may name; see :mod:`lmdeck.tracing.signal_metrics` for their definitions and units.
METRICS: tuple[str, ...] = (
    "request_rate",
    "requests",
    "errors",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "ttft_p50",
    "ttft_p95",
    "ttft_p99",
    "mean_latency_ms",
    "input_tokens",
    "output_tokens",
    "mean_output_tokens",
    "cost_per_hour",
    "cost_micros",
    "cache_hit_rate",
    "guardrail_action_rate",
)


class SignalSpec(BaseModel):
    """What a rule watches: one metric over the traces of ``where`` in the last ``window_s`` seconds.

    ``by`` splits the rule into one alert per group (e.g. ``[target]``: one per target of the route);
    ``where`` and ``by`` use the rollup dimensions (route, target, model, prompt_name, prompt_version,
    variant, team_id, key_id, status_class).
    """

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="one of " + ", ".join(METRICS))
    window_s: int = Field(default=300, ge=5, le=90 * 86400, description="seconds of traffic each evaluation reads")
    where: dict[str, str | Int64 | None] = Field(default_factory=dict, description="exact matches on dimensions")
    by: list[str] = Field(default_factory=list, description="dimensions that split the rule into one alert each")
    min_requests: int = Field(
        default=1, ge=0, le=INT64_MAX, description="a group with fewer requests in the window is not judged"
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRICS)}")
        return value


class AnomalySpec(BaseModel):
    """An anomaly rule's detector (registered in ``lmdeck.anomaly_detectors``) and its history."""

    model_config = ConfigDict(extra="forbid")

    detector: str = Field(
        default="auto",
        description="a detector name from the lmdeck.anomaly_detectors registry (auto: seasonal or mad by history, "
        "with changepoint; see docs/monitoring.md)",
    )
    sensitivity: Literal["low", "medium", "high"] = "medium"
    # hourly points over 28 days: the hour-of-week profile, and the regime whose false alarms were measured
    # (docs/benchmarks.md, bench/anomaly.py); finer steps evaluate more often and alarm more often
    step_s: int = Field(
        default=3600, ge=60, le=86400, description="seconds per point of the series (a whole number of minutes)"
    )
    history_s: int = Field(default=28 * 86400, ge=3600, le=90 * 86400, description="how far back the baseline looks")
    options: dict[str, Any] = Field(default_factory=dict, description="the detector's own options")

    @field_validator("step_s")
    @classmethod
    def _minutes(cls, value: int) -> int:
        if value % 60:
            raise ValueError(f"step_s is a whole number of minutes in seconds (60, 300, 3600...), got {value}")
        return value


class BurnRateSpec(BaseModel):
    """A multi-window burn-rate rule on an availability SLO (Google SRE workbook, chapter 5).

    The error budget is ``1 - objective``; the burn rate of a window is its error rate divided by the
    budget. The rule is active when both the long and the short window burn faster than ``factor``
    (14.4 spends 2% of a 30-day budget in an hour).
    """

    model_config = ConfigDict(extra="forbid")

    objective: float = Field(default=0.999, gt=0.0, lt=1.0, description="target share of successful requests")
    long_window_s: int = Field(default=3600, ge=120, le=90 * 86400)
    short_window_s: int = Field(default=300, ge=60, le=90 * 86400)
    factor: float = Field(default=14.4, gt=0.0, description="burn-rate multiple that fires")

    @model_validator(mode="after")
    def _short_under_long(self) -> BurnRateSpec:
        if self.short_window_s >= self.long_window_s:
            raise ValueError("short_window_s must be shorter than long_window_s")
        return self


class BudgetForecastSpec(BaseModel):
    """Fires when spend will pass ``budget_usd`` before the period ends at the rate of the last ``lookback_s``."""

    model_config = ConfigDict(extra="forbid")

    budget_usd: float = Field(gt=0.0, description="the period's budget in US dollars")
    period: Literal["day", "week", "month"] = "month"
    lookback_s: int = Field(
        default=6 * 3600, ge=300, le=90 * 86400, description="seconds of recent spend the rate is taken from"
    )


class ActionSpec(BaseModel):
    """What a rule does when it fires (once per incident), audited.

    ``type``: ``open_breaker`` (``target``: a target id; default: the alert's ``target`` group),
    ``shift_weight`` (``route`` and ``target``: move that target's weight to the route's other targets),
    ``rollback_release`` (``release``) or ``disable_flag`` (``flag``).
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    route: str | None = None
    target: str | None = None
    release: str | None = None
    flag: str | None = None


class AlertRuleSpec(BaseModel):
    """One alert rule (see the module docs for an example)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: RuleKind = "threshold"
    description: str = ""
    severity: Severity = "warning"
    enabled: bool = True
    signal: SignalSpec
    op: Comparison = Field(default=">", description="how the value is compared with threshold")
    threshold: float | None = Field(default=None, description="threshold rules: the value that fires")
    clear_threshold: float | None = Field(
        default=None, description="threshold rules: resolve only once the value is back past this (hysteresis)"
    )
    for_s: int = Field(default=0, ge=0, le=86400, description="seconds the condition holds before the alert fires")
    anomaly: AnomalySpec | None = None
    burn_rate: BurnRateSpec | None = None
    budget: BudgetForecastSpec | None = None
    channels: list[str] = Field(default_factory=list, description="notification channel names")
    actions: list[ActionSpec] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every notification")

    @model_validator(mode="after")
    def _kind_fields(self) -> AlertRuleSpec:
        if self.kind == "threshold":
            if self.threshold is None:
                raise ValueError("a threshold rule needs `threshold`")
            if self.clear_threshold is not None:
                above = self.op in (">", ">=")
                if (above and self.clear_threshold > self.threshold) or (
                    not above and self.clear_threshold < self.threshold
                ):
                    side = "at or below" if above else "at or above"
                    raise ValueError(f"clear_threshold must be {side} threshold for op {self.op!r}")
        elif self.kind == "anomaly" and self.anomaly is None:
            self.anomaly = AnomalySpec()
        elif self.kind == "burn_rate":
            if self.burn_rate is None:
                self.burn_rate = BurnRateSpec()
            if self.signal.metric != "error_rate":
                raise ValueError("a burn_rate rule watches the error_rate metric")
        elif self.kind == "budget_forecast":
            if self.budget is None:
                raise ValueError("a budget_forecast rule needs `budget` ({budget_usd, period, lookback_s})")
            if self.signal.metric != "cost_per_hour":
                raise ValueError("a budget_forecast rule watches the cost_per_hour metric")
        return self


class ChannelSpec(BaseModel):
    """A notification channel; ``type`` names a notifier of the ``lmdeck.notifiers`` registry.

    ``url`` and each header value are text or a secret reference (a URL or header carrying a token is
    kept encrypted with ``{"$secret": name}`` and never shown back);
    ``webhook``: ``url``, ``secret`` (HMAC-SHA256 key, a secret reference), ``headers``;
    ``slack``: ``url`` (an incoming-webhook URL); ``alertmanager``: ``url`` (a receiver of Alertmanager's
    webhook format); ``email``: ``smtp_host``, ``smtp_port``, ``starttls``, ``username``, ``password``
    (a secret reference), ``from_address``, ``to``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    type: str
    url: str | SecretReference | None = Field(
        default=None, description='the URL, or a reference such as {"$secret": "slack-url"} when it holds a token'
    )
    secret: SecretReference | None = None
    headers: dict[str, str | SecretReference] = Field(
        default_factory=dict,
        description='header values, or references such as {"$secret": "hook-auth"} for credentials',
    )
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretReference | None = None
    from_address: str = "lmdeck@localhost"
    to: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | SecretReference | None) -> str | SecretReference | None:
        if not isinstance(value, str):  # a reference is checked when the notifier resolves it
            return value
        check_url(value)
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ValueError(f"url {value!r}: an http:// or https:// URL with a host")
        return value


class SilenceSpec(BaseModel):
    """Mutes notifications of alerts whose labels match every matcher, from ``starts_at`` until ``ends_at``.

    Labels are ``rule``, ``severity``, the rule's own labels and its group (``target``, ``route``...).
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=NAME_PATTERN, description="kept when absent: a generated id")
    matchers: dict[str, str] = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime
    comment: str = ""

    @model_validator(mode="after")
    def _ends_after_start(self) -> SilenceSpec:
        if self.starts_at is not None and self.ends_at.timestamp() <= self.starts_at.timestamp():
            raise ValueError("ends_at must be after starts_at")
        return self


class AlertsDeclared(BaseModel):
    """The ``alerts:`` part of an ``lmdeck.yaml`` that ``lmdeck apply`` syncs."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRuleSpec] = Field(default_factory=list)
    channels: list[ChannelSpec] = Field(default_factory=list)
    silences: list[SilenceSpec] = Field(default_factory=list)


class AlertsApplyRequest(AlertsDeclared):
    """``POST /api/alerts/apply``: the declared state, whether to only plan, whether to remove the undeclared."""

    dry_run: bool = False
    prune: bool = False


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = ""


class TestNotificationRequest(BaseModel):
    """``POST /api/alerts/test``: send one test notification to ``channel`` now (delivery is awaited)."""

    model_config = ConfigDict(extra="forbid")

    channel: str


class EvaluateRequest(BaseModel):
    """``POST /api/alerts/evaluate``: evaluate every rule now (``at``: epoch seconds, default now) and
    deliver the notifications it produced."""

    model_config = ConfigDict(extra="forbid")

    at: float | None = Field(default=None, ge=0, le=MAX_EPOCH_SECONDS, description="epoch seconds")


class AlertOut(BaseModel):
    """An alert incident: one rule's group from first firing to resolution."""

    id: str
    rule: str
    state: AlertState
    severity: Severity
    labels: dict[str, Any]
    group: dict[str, Any]
    value: float | None
    started_at: float
    fired_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    silenced: bool
    summary: str
    evidence: dict[str, Any] | None = None
