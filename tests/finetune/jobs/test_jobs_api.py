"""``/v1/fine_tuning/jobs`` in process: the job's stages with a fake runner (``fakes.FakeRunner``)
and real eval runs of the demo model, the gate, registration, cancel/resume, restarts, who sees what."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lmdeck.settings import Settings

from .conftest import Deck, StartDeck, count_rows, skill_rows
from .fakes import FakeRunner

JOBS = "/v1/fine_tuning/jobs"


async def until(
    deck: Deck, job_id: str, done: Callable[[dict[str, Any]], bool], who: str = "blue-dev"
) -> dict[str, Any]:
    for _ in range(1200):
        response = await deck.call("GET", f"{JOBS}/{job_id}", who)
        assert response.status_code == 200, response.text
        job = response.json()
        if done(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {job}")


def final(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled", "gated")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "demo", "training_file": "file-abc"}, None, "training_dataset"),
        ({"model": "demo", "training_dataset": "counts@1", "validation_file": "file-abc"}, None, "regression_dataset"),
        ({"model": "demo", "training_dataset": "counts@1", "n_steps": 3}, "n_steps", "Extra inputs"),
        ({"model": "demo", "training_dataset": "counts"}, "training_dataset", "NAME@VERSION"),
        ({"model": "demo", "training_dataset": "counts@1", "hyperparameters": {"r": 0}}, "hyperparameters.r", ""),
        (
            {"model": "demo", "training_dataset": "counts@1", "hyperparameters": {"max_steps": 2**63}},
            "hyperparameters.max_steps",
            "",
        ),
        ({"model": "nope", "training_dataset": "counts@1"}, "model", "not a local base model"),
        ({"model": "demo", "training_dataset": "counts@1", "runner": "slurm"}, "runner", "unknown job runner"),
        ({"model": "demo", "training_dataset": "counts@1", "gate": {"validation": "exact >> 1"}}, "gate", "gate"),
        ({"model": "demo", "training_dataset": "missing@1"}, "training_dataset", "missing"),
        # refused before training rather than failing the job after it
        ({"model": "demo", "training_dataset": "counts@1", "evaluators": ["nope"]}, "evaluators", "unknown evaluator"),
        (
            {"model": "demo", "training_dataset": "counts@1", "gate": {"validation": "delta(exact)>=0 vs run_abc"}},
            "gate",
            "baseline",
        ),
        (
            {"model": "demo", "training_dataset": "counts@1", "prep": {"validation_fraction": 0}},
            "prep.validation_fraction",
            "regression_dataset",
        ),
    ],
)
async def test_a_bad_request_is_a_4xx_naming_what_is_wrong(
    deck: Deck, body: dict[str, Any], param: str | None, words: str
) -> None:
    await deck.dataset("counts", count_rows(10))
    response = await deck.call("POST", JOBS, json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    assert words in error["message"], error


async def test_another_teams_dataset_is_not_found_and_viewers_cannot_create(deck: Deck) -> None:
    await deck.dataset("red-counts", count_rows(10), who="red-dev")
    response = await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": "red-counts@1"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["param"] == "training_dataset"
    response = await deck.call("POST", JOBS, "blue-viewer", json={"model": "demo", "training_dataset": "red-counts@1"})
    assert response.status_code == 403


async def test_an_adapter_no_better_than_the_base_is_gated_with_its_evidence(deck: Deck) -> None:
    training = await deck.dataset("counts", count_rows(50))
    response = await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training, "suffix": "counter"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["object"] == "fine_tuning.job" and created["id"].startswith("ftjob-")
    assert created["status"] == "validating_files" and created["register_as"] == "demo-counter"

    job = await until(deck, created["id"], final)
    assert job["status"] == "gated", job
    assert job["fine_tuned_model"] is None and job["finished_at"] is not None
    gate = job["gate"]
    assert gate["passed"] is False and gate["regression"] is None
    clause = gate["validation"]["clauses"][0]
    assert clause["clause"] == "delta_low(exact)>0" and not clause["passed"]
    assert gate["metrics"]["validation.exact.delta"] == 0.0  # the adapter changes nothing
    assert job["data_card"]["train"] == 40 and job["data_card"]["validation"] == 10
    assert job["validation_dataset"] == f"{created['id']}-validation@1"
    assert job["trained_tokens"] == 1234 and job["progress"]["step"] == 6

    models = await deck.call("GET", "/api/registry/models/demo-counter")
    assert models.status_code == 404  # nothing registered

    events = (await deck.call("GET", f"{JOBS}/{created['id']}/events", params={"limit": 100})).json()
    curve = [e["data"] for e in reversed(events["data"]) if e["type"] == "metrics"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5, 6]
    assert curve[0]["train_loss"] > curve[-1]["train_loss"]
    assert any("gate refused" in e["message"] for e in events["data"])
    page = (await deck.call("GET", f"{JOBS}/{created['id']}/events", params={"limit": 2})).json()
    assert page["has_more"] is True and len(page["data"]) == 2

    checkpoints = (await deck.call("GET", f"{JOBS}/{created['id']}/checkpoints")).json()
    assert [c["step_number"] for c in checkpoints["data"]] == [6, 4, 2]
    assert checkpoints["data"][0]["object"] == "fine_tuning.job.checkpoint"

    audit = (await deck.call("GET", "/api/audit", "admin", params={"limit": 200})).json()
    actions = {e["action"] for e in audit["data"]}
    assert {"fine_tuning.job.created", "fine_tuning.job.gated"} <= actions


async def test_an_adapter_that_passes_the_gate_is_registered_with_its_lineage(deck: Deck) -> None:
    training = await deck.dataset("counts", count_rows(50))
    regression = await deck.dataset("skills", skill_rows(5))
    body = {
        "model": "demo",
        "training_dataset": training,
        "regression_dataset": regression,
        "register_as": "counter",
        "gate": {"validation": "delta(exact)>=0"},
        "hyperparameters": {"max_steps": 6, "r": 4},
        "metadata": {"ticket": "18"},
    }
    created = (await deck.call("POST", JOBS, json=body)).json()
    job = await until(deck, created["id"], final)
    assert job["status"] == "succeeded", json.dumps(job["gate"], indent=1)
    assert job["fine_tuned_model"] == "counter@1"
    assert set(job["gate"]["runs"]) == {"validation", "regression"}
    assert job["gate"]["regression"]["clauses"][0]["clause"] == "delta(exact)>=-0.05"

    version = (await deck.call("GET", "/api/registry/models/counter/versions/1")).json()
    assert version["provider"] == "local" and version["model"] == "demo" and version["base_model"] == "demo"
    assert version["adapter"].endswith(f"{created['id']}/adapter")
    assert version["lineage"] == {"dataset": training, "training_job": created["id"], "parent_version": None}
    assert version["tags"]["fine_tuning_job"] == created["id"]
    assert "validation.exact.adapter" in version["metrics"] and "regression.exact.base" in version["metrics"]

    again = (await deck.call("POST", JOBS, json=body)).json()
    assert (await until(deck, again["id"], final))["fine_tuned_model"] == "counter@2"
    second = (await deck.call("GET", "/api/registry/models/counter/versions/2")).json()
    assert second["lineage"]["parent_version"] == 1


async def test_teams_see_only_their_own_jobs(deck: Deck) -> None:
    training = await deck.dataset("counts", count_rows(10))
    created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
    assert (await deck.call("GET", f"{JOBS}/{created['id']}", "red-dev")).status_code == 404
    assert (await deck.call("POST", f"{JOBS}/{created['id']}/cancel", "red-dev")).status_code == 404
    assert (await deck.call("GET", f"{JOBS}/{created['id']}/events", "red-dev")).status_code == 404
    assert (await deck.call("GET", JOBS, "red-dev")).json()["data"] == []
    assert [j["id"] for j in (await deck.call("GET", JOBS, "blue-viewer")).json()["data"]] == [created["id"]]
    assert [j["id"] for j in (await deck.call("GET", JOBS, "admin")).json()["data"]] == [created["id"]]
    await until(deck, created["id"], final)


async def test_a_cancelled_job_resumes_from_its_newest_checkpoint(deck: Deck) -> None:
    deck.runner.hold.clear()  # the fake worker waits before its last step
    training = await deck.dataset("counts", count_rows(50))
    created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
    await until(deck, created["id"], lambda j: j["progress"]["step"] >= 5)
    cancelled = await deck.call("POST", f"{JOBS}/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await deck.call("POST", f"{JOBS}/{created['id']}/cancel")
    assert again.status_code == 409

    deck.runner.hold.set()
    # The cancelled worker exits on its own thread: until it has, a resume is refused as "still stopping".
    deadline = time.monotonic() + 120
    while (resumed := await deck.call("POST", f"{JOBS}/{created['id']}/resume")).status_code == 409:
        assert resumed.json()["error"]["code"] == "fine_tuning_job_stopping", resumed.text
        assert time.monotonic() < deadline, "the cancelled worker never exited"
        await asyncio.sleep(0.05)
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued", resumed.text
    job = await until(deck, created["id"], final)
    assert job["status"] == "gated" and job["error"] is None
    assert len(deck.runner.started) == 2
    events = (await deck.call("GET", f"{JOBS}/{created['id']}/events", params={"limit": 100})).json()["data"]
    assert any("from step 4" in e["message"] for e in events)
    assert (await deck.call("POST", f"{JOBS}/{created['id']}/resume")).status_code == 409


async def test_a_failed_worker_fails_the_job_with_its_message(
    settings: Settings, start_deck: StartDeck, adapter_cache: Any
) -> None:
    async with start_deck(settings, FakeRunner(adapter_cache, fail=True)) as deck:
        training = await deck.dataset("counts", count_rows(10))
        created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
        job = await until(deck, created["id"], final)
        assert job["status"] == "failed"
        assert job["error"] == {"code": "training_failed", "message": "fake worker: told to fail", "param": None}


async def test_a_restarted_gateway_resumes_a_running_job_through_its_runner(
    settings: Settings, start_deck: StartDeck, adapter_cache: Any
) -> None:
    first = FakeRunner(adapter_cache)
    first.hold.clear()
    async with start_deck(settings, first) as deck:
        keys = deck.keys
        training = await deck.dataset("counts", count_rows(50))
        created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
        await until(deck, created["id"], lambda j: j["progress"]["step"] >= 5)
    for handle in list(first._threads):  # the old worker goes away with the old process
        first.cancel(handle)
        first._threads[handle].join()

    second = FakeRunner(adapter_cache)
    async with start_deck(settings, second, keys) as deck:
        job = await until(deck, created["id"], final)
        assert job["status"] == "gated", job
        assert second.started and second.started[0].name == created["id"]
        checkpoints = (await deck.call("GET", f"{JOBS}/{created['id']}/checkpoints")).json()["data"]
        assert [c["step_number"] for c in checkpoints] == [6, 4, 2]


async def test_a_jobs_file_work_runs_off_the_event_loop(deck: Deck, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing base models, making the job directory, writing the spec and sizing the progress file
    happen in worker threads: the event loop's thread never blocks on the disk."""
    from lmdeck.finetune.training.spec import JobDir

    loop_thread = threading.get_ident()
    seen: dict[str, list[int]] = {}

    def recorded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, []).append(threading.get_ident())
            return fn(*args, **kwargs)

        return call

    service = deck.service
    service.deps.base_models = recorded("base_models", service.deps.base_models)
    monkeypatch.setattr(service, "job_dir", recorded("job_dir", service.job_dir))
    monkeypatch.setattr(JobDir, "write_spec", recorded("write_spec", JobDir.write_spec))
    training = await deck.dataset("counts", count_rows(10))
    created = await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})
    assert created.status_code == 200, created.text
    await until(deck, created.json()["id"], final)
    assert set(seen) == {"base_models", "job_dir", "write_spec"}
    assert all(thread != loop_thread for threads in seen.values() for thread in threads), seen


async def test_a_team_registers_only_its_own_jobs_adapters(deck: Deck) -> None:
    """Team red may not point a model version at the adapter directory of team blue's job, however it
    names the path; blue may, and an admin may name any."""
    training = await deck.dataset("counts", count_rows(10))
    created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
    job_dir = deck.service.jobs_dir / created["id"]
    spec = {"provider": "local", "model": "demo", "base_model": "demo"}
    for who in ("red-dev", "blue-dev"):
        r = await deck.call("POST", "/api/registry/models", who, json={"name": f"{who}-model"})
        assert r.status_code in (200, 201), r.text
    for path in (job_dir / "adapter", job_dir / "checkpoints" / ".." / "adapter", job_dir / ".." / created["id"]):
        refused = await deck.call(
            "POST", "/api/registry/models/red-dev-model/versions", "red-dev", json={**spec, "adapter": str(path)}
        )
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "adapter_path_forbidden" and error["param"] == "adapter"
        assert "not the directory of a fine-tuning job of your team" in error["message"]
    for unknown in (deck.service.jobs_dir / "ftjob-none" / "adapter", deck.service.jobs_dir.parent / "adapter"):
        r = await deck.call(
            "POST", "/api/registry/models/blue-dev-model/versions", "blue-dev", json={**spec, "adapter": str(unknown)}
        )
        assert r.status_code == 403, r.text
    ours = {**spec, "adapter": str(job_dir / "adapter")}
    r = await deck.call("POST", "/api/registry/models/blue-dev-model/versions", "blue-dev", json=ours)
    assert r.status_code in (200, 201), r.text
    r = await deck.call("POST", "/api/registry/models/red-dev-model/versions", "admin", json=ours)
    assert r.status_code in (200, 201), r.text
    await until(deck, created["id"], final)


async def test_a_restarted_gateway_reads_what_the_worker_wrote_while_it_was_down(
    settings: Settings, start_deck: StartDeck, adapter_cache: Any
) -> None:
    first = FakeRunner(adapter_cache)
    first.hold.clear()  # the worker waits before its last step
    async with start_deck(settings, first) as deck:
        keys = deck.keys
        training = await deck.dataset("counts", count_rows(50))
        created = (await deck.call("POST", JOBS, json={"model": "demo", "training_dataset": training})).json()
        await until(deck, created["id"], lambda j: j["progress"]["step"] >= 5)
    for thread in threading.enumerate():  # the old gateway's reader of progress.jsonl is gone
        if thread.name == f"follow-{created['id']}":
            thread.join()
    first.hold.set()  # with no gateway up, the worker ends: step 6, checkpoint 6, succeeded
    for thread in list(first._threads.values()):
        thread.join()

    second = FakeRunner(adapter_cache)
    async with start_deck(settings, second, keys) as deck:
        job = await until(deck, created["id"], final)
        assert job["status"] == "gated", job  # evaluated: the identity adapter is no better than the base
        assert second.started == []  # the finished worker was not started again
        assert job["progress"]["step"] == 6 and job["trained_tokens"] == 1234
        checkpoints = (await deck.call("GET", f"{JOBS}/{created['id']}/checkpoints")).json()["data"]
        assert [c["step_number"] for c in checkpoints] == [6, 4, 2]
        events = (await deck.call("GET", f"{JOBS}/{created['id']}/events", params={"limit": 100})).json()["data"]
        steps = [e["data"]["step"] for e in events if e["type"] == "metrics"]
        assert sorted(steps) == [1, 2, 3, 4, 5, 6]
        assert any("while no gateway followed it" in e["message"] for e in events)
