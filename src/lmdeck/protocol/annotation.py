"""Wire schemas of annotation queues (``/api/annotation-queues``): named queues of traces for people to
label, the rule that fills one, and the labels.

A queue, as declared in the config file (``evaluation.annotation_queues``) or put::

    name: support-review
    description: low-rated support answers
    dataset: support-corrections        # where `export` writes the corrections (default: the queue's name)
    categories: [wrong, incomplete, tone, ok]
    rule:                               # omit: only traces added by hand
      filter: {route: support, status: any}
      feedback_below: {name: thumbs, value: 0.5}   # or score_below: {evaluator: relevance, value: 0.5}
      sample_rate: 1.0

A rule takes traces of the queue's team that match ``filter`` and, when given, got a feedback
score (``feedback_below``) or an online evaluator score (``score_below``) under a threshold,
or were flagged by a guardrail (``guardrail: true``); ``sample_rate`` keeps that share of them
(by a hash of the trace id).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmdeck.protocol.evaluation import TraceFilter

QUEUE_NAME = r"^[A-Za-z0-9][\w.\-]{0,127}$"
_QUEUE = re.compile(QUEUE_NAME)


def queue_name_ok(name: str) -> bool:
    return _QUEUE.match(name) is not None


class Threshold(BaseModel):
    """A feedback name (or evaluator) and the value a score must be under."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="feedback name or evaluator key")
    value: float = Field(description="scores strictly below this enter the queue")


class ScoreThreshold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evaluator: str = Field(min_length=1, max_length=128, description="the online evaluator's key")
    value: float = Field(description="scores strictly below this enter the queue")


class QueueRule(BaseModel):
    """Which traces of the queue's team enter it without anyone sending them."""

    model_config = ConfigDict(extra="forbid")

    filter: TraceFilter = Field(default_factory=lambda: TraceFilter(status="any"))
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="share of matching traces kept, 0..1")
    feedback_below: Threshold | None = None
    score_below: ScoreThreshold | None = None
    guardrail: bool = Field(default=False, description="only traces a guardrail acted on")

    @model_validator(mode="after")
    def _one_source(self) -> QueueRule:
        if self.feedback_below is not None and self.score_below is not None:
            raise ValueError("a queue rule takes `feedback_below` or `score_below`, not both: make two queues")
        return self

    @property
    def source(self) -> str:
        """What the rule watches: ``feedback``, ``scores`` or ``traces``."""
        if self.feedback_below is not None:
            return "feedback"
        if self.score_below is not None:
            return "scores"
        return "traces"


class AnnotationQueueSpec(BaseModel):
    """A named queue of one team's traces to label."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=QUEUE_NAME)
    description: str | None = Field(default=None, max_length=2000)
    dataset: str | None = Field(default=None, pattern=QUEUE_NAME, description="export target (default: the name)")
    categories: list[str] = Field(default_factory=list, max_length=100, description="allowed categories; []: any")
    rule: QueueRule | None = None
    lease_s: float = Field(default=900.0, gt=0, le=7 * 86400, description="how long a claim holds an item")
    team: str | None = Field(default=None, description="the owning team (admins only; default: the caller's)")

    def target_dataset(self) -> str:
        return self.dataset or self.name


class AddItemsRequest(BaseModel):
    """``POST /api/annotation-queues/{name}/items``: traces sent by hand."""

    model_config = ConfigDict(extra="forbid")

    trace_ids: list[str] = Field(min_length=1, max_length=1000)
    reason: str | None = Field(default=None, max_length=1000)


class ClaimRequest(BaseModel):
    """``POST /api/annotation-queues/{name}/claim``: the next unlabelled item, held for ``lease_s``."""

    model_config = ConfigDict(extra="forbid")

    lease_s: float | None = Field(default=None, gt=0, le=7 * 86400, description="default: the queue's lease_s")


class LabelRequest(BaseModel):
    """``POST /api/annotation-queues/{name}/items/{id}/label``: the reviewer's verdict on a claimed item."""

    model_config = ConfigDict(extra="forbid")

    claim: str = Field(min_length=1, max_length=64, description="the claim token `claim` returned")
    score: float | None = Field(default=None, description="the reviewer's score")
    category: str | None = Field(default=None, max_length=128)
    correction: Any = Field(default=None, description="the expected output (text or JSON); becomes a dataset row")
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _something(self) -> LabelRequest:
        if self.score is None and self.category is None and self.correction is None:
            raise ValueError("a label gives a `score`, a `category` or a `correction`")
        return self


class ExportRequest(BaseModel):
    """``POST /api/annotation-queues/{name}/export``: the corrections as a new dataset version."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, pattern=QUEUE_NAME, description="default: the queue's dataset")
    description: str | None = Field(default=None, max_length=2000)
