"""One LoRA training run: base model + PEFT adapter trained by ``transformers``' Trainer, resumable.

``train_job(job, stop)`` reads ``job.json``, trains, saves a checkpoint every ``save_steps`` under
``checkpoints/`` and the final adapter under ``adapter/``, and returns the ``succeeded`` event (or the
``cancelled`` one when ``stop`` was set). Started again on the same directory it resumes from the newest
complete checkpoint: same data order, optimizer and scheduler state, so the run ends as if it had never
stopped. Nothing is downloaded (``local_files_only``)::

    event = train_job(JobDir(Path("/data/finetune/jobs/ftjob-1")), threading.Event())
    event.path        # '/data/finetune/jobs/ftjob-1/adapter'

Errors: ``TrainingRefused`` for a job this machine cannot run (QLoRA without CUDA), ``DataFileError`` for
a malformed data file, ``FileNotFoundError`` for a missing base model or data file.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
    set_seed,
)

from lmdeck.finetune.training.data import CompletionCollator, ExampleDataset, tokenize_file
from lmdeck.finetune.training.progress import ProgressCallback
from lmdeck.finetune.training.spec import JobDir, TrainingSpec
from lmdeck.protocol.training import LoraHyperparameters, ProgressEvent


class TrainingRefused(RuntimeError):
    """A job that cannot run here as specified; the message says why and what to change."""


def resolve_device(spec: TrainingSpec) -> str:
    """``cpu`` or ``cuda``; ``TrainingRefused`` when CUDA is asked for and absent, or QLoRA on the CPU."""
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if spec.device == "auto" else spec.device
    if device == "cuda" and not cuda:
        raise TrainingRefused("device 'cuda' was asked for but PyTorch sees no CUDA GPU: set device to cpu or auto")
    quantization = spec.hyperparameters.quantization
    if quantization != "none" and device != "cuda":
        raise TrainingRefused(
            f"quantization {quantization!r} (QLoRA) needs a CUDA GPU (bitsandbytes quantizes on the GPU only) "
            "and this job runs on the CPU: set quantization to none"
        )
    return device


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer: its ``tokenizer_config.json`` when present, else the bare ``tokenizer.json``."""
    if (model_dir / "tokenizer_config.json").is_file():
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        return tokenizer
    if (model_dir / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    raise FileNotFoundError(f"{model_dir} has no tokenizer.json: it is not a base model directory")


def pad_token_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The id batches are padded with (masked out, so any valid id works): pad, else end of sequence, else 0."""
    for candidate in (tokenizer.pad_token_id, model.config.pad_token_id, model.config.eos_token_id):
        if isinstance(candidate, int):
            return candidate
    return 0


def load_base(model_dir: Path, hp: LoraHyperparameters, device: str) -> PreTrainedModel:
    """The base model in the precision (and, for QLoRA, the quantization) the hyperparameters ask for."""
    kwargs: dict[str, Any] = {"local_files_only": True}
    kwargs["dtype"] = torch.bfloat16 if hp.precision == "bfloat16" else torch.float32
    if hp.quantization != "none":
        try:
            from transformers import BitsAndBytesConfig
        except ImportError as exc:  # pragma: no cover - depends on the installed transformers
            raise TrainingRefused(f"QLoRA needs bitsandbytes: {exc}; install it or set quantization to none") from exc
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=hp.quantization == "4bit",
            load_in_8bit=hp.quantization == "8bit",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_type="nf4",
        )
        kwargs["device_map"] = {"": 0}
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if hp.quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def with_lora(model: PreTrainedModel, hp: LoraHyperparameters) -> PeftModel:
    """``model`` wrapped with fresh LoRA weights on ``hp.target_modules`` (the base weights frozen)."""
    config = LoraConfig(
        r=hp.r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model: PeftModel = get_peft_model(model, config)
    return peft_model


def training_arguments(job: JobDir, spec: TrainingSpec, device: str, evaluate: bool) -> TrainingArguments:
    """The Trainer's settings for ``spec``: checkpoints under ``job.checkpoints_dir``, no reporting, seeded."""
    hp = spec.hyperparameters
    return TrainingArguments(
        output_dir=str(job.checkpoints_dir),
        max_steps=hp.max_steps if hp.max_steps is not None else -1,
        num_train_epochs=hp.n_epochs,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        learning_rate=hp.learning_rate,
        warmup_steps=hp.warmup_steps,
        lr_scheduler_type=hp.lr_scheduler_type,
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        logging_steps=hp.logging_steps,
        save_strategy="steps",
        save_steps=hp.save_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=hp.save_steps if evaluate else None,
        seed=hp.seed,
        data_seed=hp.seed,
        bf16=hp.precision == "bfloat16",
        use_cpu=device == "cpu",
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )


def train_job(job: JobDir, stop: threading.Event) -> ProgressEvent:
    """Run (or resume) the job in ``job``; the final event, which has also been appended to its progress."""
    spec = job.read_spec()
    hp = spec.hyperparameters
    device = resolve_device(spec)
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    set_seed(hp.seed)
    base_dir = Path(spec.base_model_dir)
    tokenizer = load_tokenizer(base_dir)
    train = tokenize_file(job.data_path(spec.train_file), tokenizer, spec.max_length)
    if not train:
        raise ValueError(f"{job.data_path(spec.train_file)} has no usable training example")
    validation = (
        tokenize_file(job.data_path(spec.validation_file), tokenizer, spec.max_length) if spec.validation_file else []
    )
    base = load_base(base_dir, hp, device)
    pad_id = pad_token_id(base, tokenizer)
    model = with_lora(base, hp)
    callback = ProgressCallback(job, stop)
    trainer = Trainer(
        model=model,
        args=training_arguments(job, spec, device, evaluate=bool(validation)),
        train_dataset=ExampleDataset(train),
        eval_dataset=ExampleDataset(validation) if validation else None,
        data_collator=CompletionCollator(pad_id),
        callbacks=[callback],
    )
    resume = job.latest_checkpoint()
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    state = trainer.state
    if stop.is_set() and callback.stopped_at is not None and state.global_step < state.max_steps:
        event = ProgressEvent(
            kind="cancelled", at=time.time(), step=state.global_step, total_steps=state.max_steps, message="cancelled"
        )
        job.append_event(event)
        return event
    metrics: dict[str, Any] = {
        "train_loss": round(float(result.training_loss), 6),
        "steps": state.global_step,
        "trained_tokens": int(state.num_input_tokens_seen),
        "train_seconds": round(time.monotonic() - started, 1),
        "device": device,
    }
    if validation:
        metrics["eval_loss"] = round(final_eval_loss(trainer), 6)
    save_adapter(model, job.adapter_dir)
    event = ProgressEvent(
        kind="succeeded",
        at=time.time(),
        step=state.global_step,
        total_steps=state.max_steps,
        loss=metrics["train_loss"],
        eval_loss=metrics.get("eval_loss"),
        path=str(job.adapter_dir),
        metrics=metrics,
    )
    job.append_event(event)
    return event


def final_eval_loss(trainer: Trainer) -> float:
    """The validation loss at the last step: the one logged there, or a fresh evaluation (which logs one)."""
    state = trainer.state
    logged = [e for e in state.log_history if "eval_loss" in e and e.get("step") == state.global_step]
    return float(logged[-1]["eval_loss"] if logged else trainer.evaluate()["eval_loss"])


def save_adapter(model: PeftModel, target: Path) -> None:
    """``save_pretrained`` into ``target`` through a sibling temporary directory, so it appears whole."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
