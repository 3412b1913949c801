"""Schemas of fine-tuning's data and training stages: how a dataset version is prepared, the LoRA
hyperparameters (PEFT's names), the data card stored with a prepared dataset, and the progress events a
training worker writes.

The job API (``/v1/fine_tuning/jobs``) embeds these (:mod:`lmdeck.protocol.fine_tuning`); the training
worker reads and writes them as JSON files in its job directory::

    hp = LoraHyperparameters(r=16, lora_alpha=32, max_steps=300)
    PrepOptions(validation_fraction=0.1, stratify_by="skill", near_duplicate_threshold=0.9)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.limits import INT64_MAX, MAX_COUNT

#: The linear layers LoRA adapts in a Llama-architecture model (PEFT's ``target_modules``).
LLAMA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class PrepOptions(BaseModel):
    """How a dataset version becomes training and validation examples (defaults in brackets).

    ``stratify_by`` names a row metadata key (``skill``, ``tag``...) whose values are split in the same
    proportion [``tag`` where rows carry one]; ``near_duplicate_threshold`` is the Jaccard similarity of
    character 3-gram shingles (MinHash, ``datasketch``) above which a row is dropped as a near-duplicate
    of an earlier one [0.9; 1.0 keeps all but exact duplicates]; ``scrub_pii`` passes inputs and outputs
    through the PII guardrail's masking [true]; token lengths are counted with the base model's tokenizer
    and chat template, and rows longer than ``max_tokens`` are dropped [512].
    """

    model_config = ConfigDict(extra="forbid")

    validation_fraction: float = Field(default=0.1, ge=0.0, le=0.5)
    stratify_by: str | None = "tag"
    dedupe: bool = True
    near_duplicate_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    scrub_pii: bool = True
    min_tokens: int = Field(default=1, ge=1, le=MAX_COUNT)
    max_tokens: int = Field(default=512, ge=1, le=MAX_COUNT)
    seed: int = Field(default=0, ge=0, le=INT64_MAX)


class LoraHyperparameters(BaseModel):
    """LoRA training settings, named as PEFT (``LoraConfig``) and transformers (``TrainingArguments``) name them.

    ``max_steps`` wins over ``n_epochs`` when given. ``learning_rate`` is the peak after ``warmup_steps``,
    decayed by ``lr_scheduler_type``. ``quantization`` ``4bit`` asks for QLoRA (bitsandbytes, CUDA only;
    refused on the CPU with a message that says so). ``precision`` is the dtype the trainable weights
    are kept in: ``float32`` (the CPU default) or ``bfloat16``.
    """

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, le=1024)
    lora_alpha: int = Field(default=32, ge=1, le=4096)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_TARGET_MODULES), min_length=1)
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0)
    n_epochs: int = Field(default=3, ge=1, le=1000)
    max_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    warmup_steps: int = Field(default=10, ge=0, le=1_000_000)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0, le=1000.0)
    save_steps: int = Field(default=50, ge=1, le=1_000_000)
    logging_steps: int = Field(default=5, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    precision: Literal["float32", "bfloat16"] = "float32"
    quantization: Literal["none", "4bit", "8bit"] = "none"


class LengthStats(BaseModel):
    """Token lengths (prompt + completion, through the chat template) of a set of examples."""

    count: int
    min: int
    mean: float
    p50: int
    p95: int
    max: int


class DataCard(BaseModel):
    """What a prepared dataset is and where it came from; stored with the dataset version it was made from.

    ``dropped`` counts rows removed by reason (``exact_duplicate``, ``near_duplicate``, ``too_long``,
    ``too_short``, ``no_expected``, ``unusable``); ``scrubbed`` counts rows whose text the PII guardrail
    changed; ``sources`` counts rows by where they came from (``trace``, ``correction``, ``manual``);
    ``trace_ids`` are the traces the kept rows came from (provenance).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str
    base_model: str
    chat_template: str
    options: PrepOptions
    rows_in: int
    train: int
    validation: int
    dropped: dict[str, int] = Field(default_factory=dict)
    scrubbed: int = 0
    strata: dict[str, dict[str, int]] = Field(default_factory=dict, description="stratum → {train: n, validation: n}")
    sources: dict[str, int] = Field(default_factory=dict)
    lengths: dict[str, LengthStats] = Field(default_factory=dict, description="'train' and 'validation'")
    trace_ids: list[str] = Field(default_factory=list)
    created_at: float


ProgressKind = Literal["started", "step", "evaluation", "checkpoint", "succeeded", "failed", "cancelled"]


class ProgressEvent(BaseModel):
    """One line of a training job's ``progress.jsonl``, written by the worker and read by the job service.

    ``step`` events carry ``loss`` (mean training loss since the last event), ``learning_rate``,
    ``tokens_per_s`` (trained tokens per second since the worker started or resumed) and ``eta_s``;
    ``evaluation`` events carry ``eval_loss``; ``checkpoint`` events the checkpoint directory;
    ``succeeded`` the adapter directory and the final metrics.
    """

    model_config = ConfigDict(extra="forbid")

    kind: ProgressKind
    at: float
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    trained_tokens: int | None = None
    eta_s: float | None = None
    path: str | None = None
    message: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
