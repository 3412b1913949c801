"""Prompt optimization on the wire: ``POST /api/registry/prompts/{name}/optimize`` and the record it answers.

    POST /api/registry/prompts/adder/optimize
    {"label": "production", "dataset": "sums@1", "evaluators": ["exact"], "candidates": 6, "demos": 3, "seed": 0}
    -> 202 {"id": "opt_…", "status": "running", "progress": {"done": 0, "total": 8, "best": null}, ...}

The search tries instruction variants (rewrites of the prompt's system text and the ``instructions``
given) and few-shot demonstrations drawn from the dataset's training rows, scores every candidate
with an eval run on the held-out rows, and registers the best as a new prompt version only when its
evaluators' mean beats the original's (see docs/evaluation.md, "Prompt optimization").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.evaluation import _REF, EvaluatorError, EvaluatorSpec
from lmdeck.protocol.limits import INT64_MAX, MAX_TOKENS

OptimizationStatus = Literal["running", "succeeded", "failed", "cancelled"]

#: Most candidates one optimization may score (each is an eval run over the held-out rows).
MAX_CANDIDATES = 64
#: Most demonstrations one candidate may carry.
MAX_DEMOS = 16


class OptimizeRequest(BaseModel):
    """What to optimize from, on what data, scored how, and how wide to search.

    ``label`` or ``version`` names the prompt version to start from (default: the ``production``
    label). ``route`` is the model the candidates are sent to (default: the version's bound route).
    ``holdout`` is the share of the dataset's rows scored (the held-out rows); demonstrations are
    drawn only from the others. ``max_eval_rows`` caps the held-out rows scored per candidate.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, description="dataset version: name@version (or a name for the newest)")
    evaluators: list[EvaluatorSpec | str] = Field(min_length=1, max_length=16)
    label: str | None = Field(default=None, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)
    route: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: list[str] = Field(
        default_factory=list, max_length=32, description="instruction texts to try in place of the system message"
    )
    candidates: int = Field(default=6, ge=1, le=MAX_CANDIDATES, description="candidates scored besides the original")
    demos: int = Field(default=3, ge=0, le=MAX_DEMOS, description="demonstrations per candidate (0: instructions only)")
    seed: int = Field(default=0, ge=0, le=INT64_MAX)
    holdout: float = Field(default=0.5, gt=0.0, lt=1.0, description="share of the rows held out for scoring")
    max_eval_rows: int = Field(default=100, ge=1, le=10_000, description="held-out rows scored per candidate")
    concurrency: int = Field(default=4, ge=1, le=64)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)

    @field_validator("dataset")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not _REF.match(value):
            raise ValueError(f"{value!r} is not a dataset reference: write name@version")
        return value

    @field_validator("instructions")
    @classmethod
    def _instructions(cls, value: list[str]) -> list[str]:
        for text in value:
            if len(text) > 4000:
                raise ValueError("an instruction is at most 4000 characters")
        return value

    @field_validator("evaluators")
    @classmethod
    def _specs(cls, value: list[EvaluatorSpec | str]) -> list[EvaluatorSpec | str]:
        try:
            parsed: list[EvaluatorSpec | str] = list(EvaluatorSpec.parse_many([v for v in value if isinstance(v, str)]))
        except EvaluatorError as exc:
            raise ValueError(str(exc)) from None
        return parsed + [v for v in value if isinstance(v, EvaluatorSpec)]

    @model_validator(mode="after")
    def _one_pointer(self) -> OptimizeRequest:
        if self.label is not None and self.version is not None:
            raise ValueError("name the starting version by `label` or by `version`, not both")
        return self

    def specs(self) -> list[EvaluatorSpec]:
        return [s if isinstance(s, EvaluatorSpec) else EvaluatorSpec.parse(s) for s in self.evaluators]


class OptimizationProgress(BaseModel):
    """How far a search is: eval runs ``done`` of ``total`` (the bootstrap run, the original, each
    candidate), and the best candidate so far with its evaluators' mean."""

    done: int = 0
    total: int = 0
    stage: str = "starting"
    best: dict[str, Any] | None = None


class OptimizationRecord(BaseModel):
    """One optimization as ``GET /api/registry/prompts/{name}/optimizations/{id}`` answers it.

    ``result`` (when finished): the baseline and each candidate with its eval run and scores, the
    winner (or None), the paired comparison of the winner against the original, and the version
    registered (None when no candidate beat the original).
    """

    id: str
    prompt: str
    from_version: int
    dataset: str
    status: OptimizationStatus
    request: dict[str, Any]
    progress: OptimizationProgress
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: float
    finished_at: float | None = None
    created_by: str | None = None
