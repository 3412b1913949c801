"""Tiny training jobs for tests: the bundled demo model and a few dozen ``count`` examples.

A job made here trains in seconds on a CPU, so tests of the worker, the runners and the job service can
run real training::

    job = tiny_job(tmp_path / "job", max_steps=6, save_steps=2)
    subprocess.run([sys.executable, "-m", "lmdeck.finetune.training.worker", str(job.root)], check=True)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from lmdeck.finetune.training.spec import JobDir, TrainingSpec
from lmdeck.local.chat_template import ChatTemplate
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.skills import SKILLS
from lmdeck.protocol.training import LoraHyperparameters


def skill_lines(skill: str, count: int, seed: int = 0) -> list[str]:
    """``count`` JSON lines ``{"prompt", "completion", "stratum"}`` of one demo skill's training split."""
    rng = random.Random(f"{seed}:{skill}")
    template = ChatTemplate()
    lines = []
    for _ in range(count):
        example = SKILLS[skill].sample(rng, "train")
        prompt, completion = template.training_text(example.prompt, example.answer)
        lines.append(json.dumps({"prompt": prompt, "completion": completion, "stratum": skill}))
    return lines


def tiny_job(
    root: Path, *, max_steps: int = 6, save_steps: int = 2, train: int = 32, validation: int = 8, **hp: Any
) -> JobDir:
    """A job directory training a rank-4 LoRA on the demo model for ``max_steps`` steps of 4 examples.

    ``hp`` overrides further :class:`LoraHyperparameters` fields; one PyTorch thread, on the CPU.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.jsonl").write_text("\n".join(skill_lines("count", train)) + "\n")
    (root / "validation.jsonl").write_text("\n".join(skill_lines("count", validation, seed=1)) + "\n")
    settings: dict[str, Any] = {
        "r": 4,
        "lora_alpha": 8,
        "max_steps": max_steps,
        "batch_size": 4,
        "save_steps": save_steps,
        "logging_steps": 1,
        "warmup_steps": 0,
    }
    settings.update(hp)
    spec = TrainingSpec(
        job_id=root.name,
        base_model="demo",
        base_model_dir=str(DEMO_MODEL_DIR),
        hyperparameters=LoraHyperparameters(**settings),
        device="cpu",
        threads=1,
    )
    return JobDir.create(root, spec)
