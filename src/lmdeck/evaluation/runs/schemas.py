"""What an eval run is asked to do, and how its results read back."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.evaluation.base import EvaluatorError
from lmdeck.evaluation.spec import EvaluatorSpec
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.limits import MAX_COUNT, MAX_TOKENS

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
