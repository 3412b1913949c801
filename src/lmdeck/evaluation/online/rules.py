"""Online rules: which live traces to score, how many of them, and with what.

    rule = OnlineRule(name="json-replies", filter=TraceFilter(route="extract"), sample_rate=0.1,
                      evaluators=["json_valid"])
    rule.matches(record) and rule.sampled(record)

Sampling hashes the trace id, so the decision is the same in every process and on every
replay, and a rate of 0.1 scores 10% of the matching traces (within sampling noise).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.evaluation import EvaluatorError, EvaluatorSpec
from lmdeck.protocol.limits import INT64_MAX
from lmdeck.tracing import TraceRecord

_NAME = r"^[A-Za-z0-9][\w.\-]{0,127}$"


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

    name: str = Field(pattern=_NAME)
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
    return re.match(_NAME, name) is not None
