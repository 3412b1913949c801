"""``/v1/fine_tuning/jobs`` schemas: OpenAI's fine-tuning job, event and checkpoint objects, and the
create request, with lmdeck's fields added (OpenAI's clients ignore fields they do not know).

A job moves ``validating_files`` (the dataset version is prepared) → ``queued`` → ``running`` (a
runner trains the adapter; then the adapter and the base are evaluated) and ends ``succeeded`` (the
gate passed and the adapter is registered as ``fine_tuned_model``, a ``name@version``), ``gated`` (the
gate refused it: ``gate.evidence`` says why, nothing is registered), ``failed`` or ``cancelled``.
Times are Unix seconds::

    FineTuningJobCreate(model="demo", training_dataset="count-fixes@3", register_as="counter",
                        regression_dataset="skills@1", hyperparameters={"max_steps": 120})
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.limits import INT64_MAX
from lmdeck.protocol.registry import REGISTRY_NAME
from lmdeck.protocol.training import DataCard, LoraHyperparameters, PrepOptions

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "gated"]
#: Statuses a job does not leave by itself (``resume`` takes a failed or cancelled job back to work).
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "gated"})
#: Where a job is within ``running``: training the adapter, then evaluating it.
JobStage = Literal["prepare", "train", "evaluate", "register", "done"]
_DATASET_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}@[A-Za-z0-9._-]{1,128}$")
#: Fields of OpenAI's create request that lmdeck names differently, with the fix.
_RENAMED = {
    "training_file": "lmdeck trains on a registered dataset version: send `training_dataset: NAME@VERSION` "
    "(create one with `lmdeck datasets create` or from traces) instead of `training_file`",
    "validation_file": "lmdeck holds out `prep.validation_fraction` of the training dataset and evaluates on "
    "it; send `regression_dataset: NAME@VERSION` for a second set instead of `validation_file`",
}


class FineTuneGate(BaseModel):
    """When an adapter may be registered: two gates in the eval gate language
    (:mod:`lmdeck.evaluation.runs.gate`), each judged on the adapter's eval run with the base model's
    run of the same dataset as the baseline.

    ``validation`` is judged on the held-out split of the training dataset, ``regression`` on the
    regression dataset (skipped when the job names none). Left out, they are built from the first
    evaluator ``E``: ``delta_low(E)>0`` (better than the base, at 95% confidence) and
    ``delta(E)>=-TOLERANCE`` (on average not worse than the base beyond ``tolerance``; showing that at
    95% confidence, ``delta_low(E)>=-TOLERANCE``, takes a regression set of hundreds of rows).
    """

    model_config = ConfigDict(extra="forbid")

    validation: str | None = Field(default=None, max_length=2000)
    regression: str | None = Field(default=None, max_length=2000)
    tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
    min_rows: int = Field(default=10, ge=1, le=1_000_000, description="fewer rows than this: insufficient evidence")

    def expressions(self, evaluator: str) -> tuple[str, str]:
        """The (validation, regression) gate texts, defaults filled in for ``evaluator``."""
        return (
            self.validation or f"delta_low({evaluator})>0",
            self.regression or f"delta({evaluator})>={-self.tolerance:g}",
        )


class FineTuningJobCreate(BaseModel):
    """``POST /v1/fine_tuning/jobs``.

    ``model`` is a local base model (``demo``, or a name from ``local.models``); ``training_dataset``
    a dataset version ``name@version``; ``register_as`` the registry model the adapter is registered
    into when the gate passes (default: ``<model>-<suffix>`` or ``<model>-ft``); ``runner`` the job
    runner (``local``, a subprocess, or ``ray``). OpenAI's ``training_file`` is refused by name.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128, pattern=REGISTRY_NAME)
    training_dataset: str = Field(min_length=3, max_length=260)
    regression_dataset: str | None = Field(default=None, max_length=260)
    hyperparameters: LoraHyperparameters = Field(default_factory=LoraHyperparameters)
    prep: PrepOptions = Field(default_factory=PrepOptions)
    runner: str = Field(default="local", min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    suffix: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    register_as: str | None = Field(default=None, max_length=128, pattern=REGISTRY_NAME)
    gate: FineTuneGate = Field(default_factory=FineTuneGate)
    evaluators: list[str] = Field(default_factory=lambda: ["exact"], min_length=1, max_length=16)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, fix in _RENAMED.items():
                if name in data:
                    raise ValueError(f"`{name}` is not supported: {fix}")
        return data

    @field_validator("training_dataset", "regression_dataset")
    @classmethod
    def _dataset_ref(cls, value: str | None) -> str | None:
        if value is not None and not _DATASET_REF.match(value):
            raise ValueError(f"{value!r} is not a dataset version: write NAME@VERSION (e.g. count-fixes@3)")
        return value

    def model_name(self) -> str:
        """The registry model the adapter is registered into."""
        return self.register_as or f"{self.model}-{self.suffix or 'ft'}"


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobProgress(BaseModel):
    """Where training is: optimizer steps done of ``total_steps``, the last training loss, trained
    tokens per second and the estimated seconds left."""

    stage: JobStage = "prepare"
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


class GateOutcome(BaseModel):
    """What the gate decided and on what: each gate's result (``lmdeck eval gate``'s shape), the eval
    runs it read (``adapter`` and ``base`` per dataset) and the comparisons' headline numbers."""

    passed: bool
    validation: dict[str, Any] | None = None
    regression: dict[str, Any] | None = None
    runs: dict[str, dict[str, str]] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)


class FineTuningJob(BaseModel):
    """OpenAI's ``fine_tuning.job`` plus lmdeck's fields (``training_dataset`` ... ``data_card``)."""

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None = None
    model: str
    fine_tuned_model: str | None = None
    organization_id: str = "lmdeck"
    status: JobStatus
    hyperparameters: dict[str, Any]
    seed: int
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    result_files: list[str] = Field(default_factory=list)
    error: JobError | None = None
    estimated_finish: int | None = None
    integrations: list[Any] = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    method: dict[str, Any] | None = None
    # lmdeck's fields
    training_dataset: str
    validation_dataset: str | None = None
    regression_dataset: str | None = None
    register_as: str
    runner: str
    progress: JobProgress = Field(default_factory=JobProgress)
    gate: GateOutcome | None = None
    data_card: DataCard | None = None
    team_id: str | None = None
    created_by: str | None = None


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool = False


EventType = Literal["message", "metrics"]


class FineTuningJobEvent(BaseModel):
    """OpenAI's ``fine_tuning.job.event``; ``metrics`` events carry a training step's numbers in ``data``
    (``step``, ``total_steps``, ``train_loss``, ``tokens_per_s``...): together, the job's loss curve."""

    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"] = "info"
    message: str
    type: EventType = "message"
    data: dict[str, Any] | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool = False


class FineTuningJobCheckpoint(BaseModel):
    """OpenAI's ``fine_tuning.job.checkpoint``; ``fine_tuned_model_checkpoint`` is the checkpoint's directory."""

    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int = Field(ge=0, le=INT64_MAX)
    metrics: dict[str, float | None] = Field(default_factory=dict)


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None
