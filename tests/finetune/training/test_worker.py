"""The training worker as a process: trains and writes its adapter and events, resumes after SIGKILL,
stops on SIGTERM, and refuses QLoRA on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmdeck.finetune.training.spec import JobDir, checkpoint_step
from lmdeck.protocol.training import ProgressEvent
from lmdeck.testing.training_jobs import tiny_job

WORKER = [sys.executable, "-m", "lmdeck.finetune.training.worker"]
#: Seconds a test waits for an event before failing: generous, as the machine may be busy.
PATIENCE = 180.0


def start(job: JobDir) -> subprocess.Popen[bytes]:
    log = job.log_file.open("ab")
    return subprocess.Popen([*WORKER, str(job.root)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_to_end(job: JobDir) -> int:
    return start(job).wait(timeout=PATIENCE)


def wait_for(job: JobDir, kind: str, child: subprocess.Popen[bytes]) -> ProgressEvent:
    """The first event of ``kind``, polling the progress file; fails if the worker exits without one."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        events, _ = job.read_events()
        found = [e for e in events if e.kind == kind]
        if found:
            return found[0]
        if child.poll() is not None:
            pytest.fail(f"worker exited ({child.returncode}) before a {kind} event: {job.log_file.read_text()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"no {kind} event within {PATIENCE} s")


def events(job: JobDir) -> list[ProgressEvent]:
    return job.read_events()[0]


def test_the_worker_trains_an_adapter_and_reports_its_progress(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job", max_steps=4, save_steps=2)

    assert run_to_end(job) == 0, job.log_file.read_text()[-3000:]

    seen = events(job)
    kinds = [e.kind for e in seen]
    assert kinds[0] == "started" and seen[0].step == 0 and seen[0].total_steps == 4
    assert kinds[-1] == "succeeded"
    steps = [e for e in seen if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert all(e.loss is not None and e.loss > 0 and e.learning_rate is not None for e in steps)
    assert all(e.tokens_per_s and e.tokens_per_s > 0 and e.eta_s is not None for e in steps[1:])
    assert steps[-1].trained_tokens and steps[-1].trained_tokens > 0
    assert [e.step for e in seen if e.kind == "checkpoint"] == [2, 4]
    assert [e.step for e in seen if e.kind == "evaluation"] == [2, 4]
    assert all(e.eval_loss and e.eval_loss > 0 for e in seen if e.kind == "evaluation")
    assert [checkpoint_step(p) for p in job.checkpoints()] == [2, 4]

    done = seen[-1]
    assert done.path == str(job.adapter_dir) and done.step == 4
    assert done.metrics["steps"] == 4 and done.metrics["eval_loss"] > 0 and done.metrics["train_loss"] > 0
    assert (job.adapter_dir / "adapter_model.safetensors").is_file()
    config = json.loads((job.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["peft_type"] == "LORA"
    assert set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }


def test_the_adapter_loads_onto_the_base_and_changes_its_output(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job = tiny_job(tmp_path / "job", max_steps=2, save_steps=2, learning_rate=1e-2)
    assert run_to_end(job) == 0, job.log_file.read_text()[-3000:]

    base_dir = Path(job.read_spec().base_model_dir)
    ids = torch.tensor([[4, 40, 41, 42, 2, 5]])
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True).eval()
    with torch.inference_mode():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(job.adapter_dir)).eval()
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after)


def test_a_worker_killed_after_a_checkpoint_resumes_from_it(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job", max_steps=60, save_steps=3, logging_steps=1)
    first = start(job)
    checkpoint = wait_for(job, "checkpoint", first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=PATIENCE)
    assert first.returncode == -signal.SIGKILL
    before = events(job)
    assert before[-1].kind != "succeeded", "the worker finished before it could be killed"
    newest = job.latest_checkpoint()
    assert newest is not None and checkpoint_step(newest) >= checkpoint.step > 0

    assert run_to_end(job) == 0, job.log_file.read_text()[-3000:]

    after = events(job)[len(before) :]
    assert after[0].kind == "started"
    assert after[0].step == checkpoint_step(newest) > 0
    assert after[0].message == f"resumed from checkpoint-{checkpoint_step(newest)}"
    resumed_steps = [e.step for e in after if e.kind == "step"]
    assert resumed_steps == list(range(checkpoint_step(newest) + 1, 61))
    assert after[-1].kind == "succeeded" and after[-1].step == 60
    assert (job.adapter_dir / "adapter_model.safetensors").is_file()


def test_sigterm_cancels_at_the_next_step(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job", max_steps=100_000, save_steps=100_000)
    child = start(job)
    wait_for(job, "step", child)
    child.send_signal(signal.SIGTERM)

    assert child.wait(timeout=PATIENCE) == 3
    seen = events(job)
    assert seen[-1].kind == "cancelled"
    assert 0 < seen[-1].step < 100_000
    assert not job.adapter_dir.exists()


def test_qlora_is_refused_on_the_cpu_with_the_reason(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job", quantization="4bit")

    assert run_to_end(job) == 1
    failed = events(job)[-1]
    assert failed.kind == "failed" and failed.message
    assert "CUDA" in failed.message and "quantization" in failed.message and "cpu" in failed.message.lower()


def test_a_malformed_data_file_fails_with_its_line(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job")
    (job.root / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\nnot json\n')

    assert run_to_end(job) == 1
    failed = events(job)[-1]
    assert failed.kind == "failed" and failed.message and "train.jsonl:2" in failed.message
