"""The bundled demo model: it loads from the package, answers held-out questions, and batching changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmdeck.local.demo_eval import evaluate
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.engine import LocalEngine
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import SamplingParams
from lmdeck.local.skills import SKILLS, heldout_set

ROOT = Path(__file__).resolve().parents[2]
#: The accuracy docs/demo-model.md promises on held-out arithmetic (its measured value, less a margin).
ARITHMETIC_FLOOR = 0.85
#: How far a re-evaluation may drift from the shipped eval.json (it should not drift at all on one machine).
REPRODUCE_TOLERANCE = 0.02


def test_the_checkpoint_ships_inside_the_package() -> None:
    names = {p.name for p in DEMO_MODEL_DIR.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "training.json", "eval.json"} <= names
    assert (DEMO_MODEL_DIR / "model.safetensors").stat().st_size <= 25 * 1024 * 1024


def test_held_out_arithmetic_is_above_the_stated_accuracy() -> None:
    report = evaluate(DEMO_MODEL_DIR, size=60, skills=["add", "sub"])
    for skill in ("add", "sub"):
        assert report["accuracy"][skill] >= ARITHMETIC_FLOOR, report["failures"][skill]


def test_evaluation_reproduces_the_shipped_numbers() -> None:
    shipped = json.loads((DEMO_MODEL_DIR / "eval.json").read_text())
    size = shipped["examples"]["extract"]
    again = evaluate(DEMO_MODEL_DIR, size=size, skills=["extract", "capital"])
    for skill, accuracy in again["accuracy"].items():
        assert accuracy == pytest.approx(shipped["accuracy"][skill], abs=REPRODUCE_TOLERANCE)


async def test_batched_greedy_answers_equal_one_at_a_time(demo_lm: LocalCausalLM) -> None:
    prompts = [
        demo_lm.template.render([{"role": "user", "content": e.prompt}]) for s in SKILLS for e in heldout_set(s, 3)
    ]
    params = SamplingParams(max_tokens=48, temperature=0)
    engine = LocalEngine(demo_lm, max_batch_size=32, max_prefill_rows=4)
    try:
        alone = [(await engine.submit(demo_lm.encode(p), params).text())[0] for p in prompts]

        steps, rows = engine.stats.steps, engine.stats.step_rows
        # All submitted before the first is done (whatever the machine's load), so they share steps;
        # joining mid-generation is covered in test_engine.py.
        handles = [engine.submit(demo_lm.encode(p), params) for p in prompts]
        together = [text for text, _ in await asyncio.gather(*(h.text() for h in handles))]
    finally:
        engine.close()
    assert list(together) == alone
    assert (engine.stats.step_rows - rows) / (engine.stats.steps - steps) > 4  # they really shared steps


def test_training_runs_end_to_end_on_a_tiny_budget(tmp_path: Path) -> None:
    out = tmp_path / "model"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_demo_model.py"),
            "--steps",
            "3",
            "--out",
            str(out),
            "--eval-size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    meta = json.loads((out / "training.json").read_text())
    assert meta["steps"] == 3
    report = json.loads((out / "eval.json").read_text())
    assert set(report["accuracy"]) == set(SKILLS)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LMDECK_TEST_TRAINING"), reason="set LMDECK_TEST_TRAINING=1: retrains (minutes)")
def test_full_training_reproduces_the_shipped_accuracy(tmp_path: Path) -> None:
    shipped = json.loads((DEMO_MODEL_DIR / "eval.json").read_text())
    meta = json.loads((DEMO_MODEL_DIR / "training.json").read_text())
    args = meta["command"].split()[2:]
    out = tmp_path / "model"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_demo_model.py"), *args, "--out", str(out)], check=True
    )
    again = json.loads((out / "eval.json").read_text())
    for skill, accuracy in shipped["accuracy"].items():
        assert again["accuracy"][skill] == pytest.approx(accuracy, abs=0.05), skill
