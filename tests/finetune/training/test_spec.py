"""The job directory: spec round trip, progress events read incrementally, complete checkpoints only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from lmdeck.finetune.training.spec import JobDir, TrainingSpec, checkpoint_step
from lmdeck.protocol.training import LoraHyperparameters, ProgressEvent


def spec(**fields: object) -> TrainingSpec:
    return TrainingSpec.model_validate({"job_id": "ftjob-1", "base_model": "demo", "base_model_dir": "/m", **fields})


def test_the_spec_round_trips_through_job_json(tmp_path: Path) -> None:
    written = spec(hyperparameters={"r": 8, "max_steps": 10}, device="cpu", threads=2)
    job = JobDir.create(tmp_path / "a" / "job", written)

    assert job.spec_file == tmp_path / "a" / "job" / "job.json"
    assert job.read_spec() == written
    assert job.read_spec().hyperparameters == LoraHyperparameters(r=8, max_steps=10)


def test_a_spec_with_unknown_or_out_of_range_fields_is_refused() -> None:
    with pytest.raises(ValidationError):
        spec(epochs=3)
    with pytest.raises(ValidationError):
        spec(threads=0)
    with pytest.raises(ValidationError):
        spec(device="tpu")


def test_data_paths_are_relative_to_the_job_directory_unless_absolute(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    assert job.data_path("train.jsonl") == tmp_path / "train.jsonl"
    assert job.data_path("/data/v.jsonl") == Path("/data/v.jsonl")


def test_events_are_read_from_an_offset_and_a_partial_line_waits(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    assert job.read_events() == ([], 0)
    job.append_event(ProgressEvent(kind="started", at=time.time()))
    job.append_event(ProgressEvent(kind="step", at=time.time(), step=1, loss=2.5))
    first, offset = job.read_events()
    assert [e.kind for e in first] == ["started", "step"] and first[1].loss == 2.5

    with job.progress_file.open("a") as out:
        out.write('{"kind": "step", "at": 1.0, "st')
    assert job.read_events(offset) == ([], offset)
    with job.progress_file.open("a") as out:
        out.write('ep": 2}\n')
    later, end = job.read_events(offset)
    assert [e.step for e in later] == [2] and end == job.progress_file.stat().st_size


def test_only_complete_checkpoints_count_newest_last(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    assert job.latest_checkpoint() is None
    for step in (10, 2, 30):
        (job.checkpoints_dir / f"checkpoint-{step}").mkdir(parents=True)
        (job.checkpoints_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (job.checkpoints_dir / "checkpoint-40").mkdir()  # being written when the worker died: no state yet
    (job.checkpoints_dir / "other").mkdir()

    assert [checkpoint_step(p) for p in job.checkpoints()] == [2, 10, 30]
    assert job.latest_checkpoint() == job.checkpoints_dir / "checkpoint-30"
    with pytest.raises(ValueError):
        checkpoint_step(job.checkpoints_dir / "other")
