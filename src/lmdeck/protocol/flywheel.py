"""Wire schemas of ``/api/flywheel/runs``: production traces → dataset → fine-tuning job → release.

    POST /api/flywheel/runs
    {"route": "demo", "from_traces": "feedback<=0 skill=count since=7d", "corrections": "annotations",
     "base": "demo", "register_as": "counter", "dry_run": true}

A run's steps are ``dataset`` (a dataset version cut from the traces, with corrections),
``fine_tune`` (a fine-tuning job: prepare → train → gate → register a model version) and
``release`` (alias ``candidate`` of the registered model moved to the new version). Each step
records its output; a failed run resumes from the step that failed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.registry import REGISTRY_NAME

#: The steps of a run, in order.
STEPS: tuple[str, ...] = ("dataset", "fine_tune", "release")
StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped"]
RunStatus = Literal["running", "succeeded", "failed", "gated"]


class FlywheelRunRequest(BaseModel):
    """What a flywheel run draws on, what it trains, and under which name it registers the result."""

    model_config = ConfigDict(extra="forbid")

    route: str = Field(min_length=1, max_length=200, description="the route whose traffic is drawn and served")
    from_traces: str = Field(default="", max_length=4000, description="trace filter, e.g. 'feedback<=0 skill=count'")
    corrections: Literal["none", "feedback", "annotations"] = "annotations"
    keep_uncorrected: bool = Field(default=False, description="keep traces nobody corrected (their answer as is)")
    limit: int = Field(default=1000, ge=1, le=100_000, description="most traces to draw")
    base: str = Field(min_length=1, max_length=200, description="the base model to fine-tune (e.g. demo)")
    register_as: str | None = Field(
        default=None, pattern=REGISTRY_NAME, description="model name to register (default: the route's name)"
    )
    dataset: str | None = Field(default=None, pattern=REGISTRY_NAME, description="default: <register_as>-flywheel")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="passed to the fine-tuning job")
    job: dict[str, Any] = Field(default_factory=dict, description="other fine-tuning job fields (gate, regression set)")
    alias: str = Field(default="candidate", pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="moved to the new version")
    release: dict[str, Any] | None = Field(
        default=None,
        description="release the new version as a canary on `route` (a route that follows a registry alias): "
        "the release's fields (strategy, metrics, label, ...) without name, route and candidate",
    )
    dry_run: bool = Field(default=False, description="answer the plan; change nothing")

    def model_name(self) -> str:
        return self.register_as or self.route

    def dataset_name(self) -> str:
        return self.dataset or f"{self.model_name()}-flywheel"
