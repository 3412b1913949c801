"""``/api/flywheel/runs`` in process: the plan counts the traces and changes nothing; a run cuts a dataset
with corrections, follows a fine-tuning job, moves the ``candidate`` alias; a failed step is resumed,
a gated job ends the run ``gated``; every step is audited; bad input is a 4xx in OpenAI's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from evaluation.conftest import Deck
from lmdeck.finetune.flywheel.tuner import JobOutcome
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.flywheel import FlywheelRunRequest
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.model_registry import ModelRegistry
from lmdeck.settings import Settings
from lmdeck.tracing.sql_store import SQLTraceStore


def trace(trace_id: str, skill: str, question: str, answer: str) -> TraceRecord:
    return TraceRecord(
        id=trace_id,
        route="demo",
        request_body={
            "model": "demo",
            "messages": [{"role": "user", "content": question}],
            "metadata": {"skill": skill},
        },
        response_body={"choices": [{"message": {"role": "assistant", "content": answer}}]},
    )


class FakeTuner:
    """Registers a model version for each job, after one poll reporting progress; ``gate`` decides."""

    name = "fake"
    available = True
    unavailable_reason = ""

    def __init__(self, models: ModelRegistry, *, gate: bool = True) -> None:
        self.models = models
        self.gate = gate
        self.jobs: dict[str, dict[str, Any]] = {}

    async def submit(self, **job: Any) -> str:
        if job["hyperparameters"].get("epochs", 1) < 1:
            ModelVersionSpec.model_validate({"version": 0})  # a request the tuner builds fails validation
        job_id = f"ftjob-{len(self.jobs) + 1}"
        self.jobs[job_id] = {**job, "polls": 0}
        return job_id

    async def resumable(self, job_id: str, principal: Principal) -> bool:
        return job_id in self.jobs

    async def poll(self, job_id: str, principal: Principal) -> JobOutcome:
        job = self.jobs[job_id]
        job["polls"] += 1
        if job["polls"] == 1:
            return JobOutcome("running", progress="step 5/10 loss 0.8")
        if not self.gate:
            return JobOutcome("gated", error="count accuracy 0.2 < 0.8", details={"gate": {"passed": False}})
        spec = ModelVersionSpec(provider="arith", model="careful", base_model=job["base"])
        version = await self.models.create_version(job["register_as"], spec, job["principal"])
        return JobOutcome("succeeded", model_name=job["register_as"], model_version=version.version)


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(make_settings()) as running:
        SQLTraceStore(running.gateway.db).insert(
            [
                trace("c1", "count", "How many r in 'mirror'?", "2"),
                trace("c2", "count", "How many s in 'moss'?", "1"),
                trace("a1", "add", "What is 2 + 2?", "4"),
            ]
        )
        flywheel = running.gateway.flywheel
        assert flywheel is not None
        flywheel.poll_interval = 0.01
        yield running


RUN = {"route": "demo", "from_traces": "feedback<=0 skill=count", "corrections": "feedback", "base": "demo"}


async def rate_down(deck: Deck) -> None:
    for trace_id, correction in (("c1", "m-i-r-r-o-r: 3"), ("c2", None)):
        body = {"trace_id": trace_id, "value": 0, **({"correction": correction} if correction else {})}
        assert (await deck.call("POST", "/api/feedback", json=body)).status_code == 201


async def finished(deck: Deck, run_id: str) -> dict[str, Any]:
    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    await flywheel.wait(run_id)
    r = await deck.call("GET", f"/api/flywheel/runs/{run_id}", "viewer")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_dry_run_plans_each_step_and_changes_nothing(deck: Deck) -> None:
    await rate_down(deck)
    r = await deck.call("POST", "/api/flywheel/runs", json={**RUN, "register_as": "counter", "dry_run": True})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert [s["name"] for s in plan["steps"]] == ["dataset", "fine_tune", "release"]
    dataset = plan["steps"][0]
    assert dataset["traces"] == 2 and dataset["rows"] == 1 and dataset["corrected"] == 1
    assert "counter@candidate" in plan["steps"][2]["describe"]
    assert "note" not in plan  # this server fine-tunes through its jobs service
    assert (await deck.call("GET", "/api/registry/datasets/counter-flywheel")).status_code == 404
    assert (await deck.call("GET", "/api/flywheel/runs")).json()["data"] == []
    empty = await deck.call("POST", "/api/flywheel/runs", json={**RUN, "from_traces": "skill=upper", "dry_run": True})
    assert empty.status_code == 200 and empty.json()["steps"][0]["traces"] == 0


async def test_a_run_stops_before_training_without_jobs_and_resumes_from_there(deck: Deck) -> None:
    await rate_down(deck)
    started = await deck.call("POST", "/api/flywheel/runs", "developer", json={**RUN, "register_as": "counter"})
    assert started.status_code == 202, started.text
    run = await finished(deck, started.json()["id"])
    assert run["status"] == "failed" and run["error"].startswith("fine_tune:")
    dataset, tune, release = run["steps"]
    assert dataset["status"] == "succeeded" and dataset["output"]["ref"] == "counter-flywheel@1"
    assert tune["status"] == "failed" and release["status"] == "pending"

    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    tuner = flywheel.tuner = FakeTuner(deck.gateway.registry.models)
    assert (await deck.call("POST", f"/api/flywheel/runs/{run['id']}/resume", "viewer")).status_code == 403
    resumed = await deck.call("POST", f"/api/flywheel/runs/{run['id']}/resume", "developer")
    assert resumed.status_code == 202, resumed.text
    done = await finished(deck, run["id"])
    assert done["status"] == "succeeded", (done["error"], done["steps"])
    dataset_again, tune, release = done["steps"]
    assert dataset_again == dataset  # kept, not cut again
    assert tune["output"]["model_version"] == 1 and tune["progress"] == "step 5/10 loss 0.8"
    job = tuner.jobs[tune["output"]["job_id"]]
    assert (job["dataset"], job["dataset_version"], job["base"]) == ("counter-flywheel", 1, "demo")
    assert release["output"]["target"] == "registry:counter@candidate" and release["wall_s"] is not None
    model = (await deck.call("GET", "/api/registry/models/counter")).json()
    assert model["aliases"]["candidate"] == 1, model
    again = await deck.call("POST", f"/api/flywheel/runs/{run['id']}/resume", "developer")
    assert again.status_code == 409

    audit = (await deck.call("GET", "/api/audit", params={"limit": 100})).json()["data"]
    actions = [e["action"] for e in audit if e["target"] == run["id"]]
    for action in ("flywheel.run", "flywheel.dataset", "flywheel.fine_tune", "flywheel.release", "flywheel.resume"):
        assert action in actions, actions
    assert (await deck.call("GET", f"/api/flywheel/runs/{run['id']}", "red-dev")).status_code == 404


async def test_a_gated_job_ends_the_run_gated_with_its_evidence(deck: Deck) -> None:
    await rate_down(deck)
    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    flywheel.tuner = FakeTuner(deck.gateway.registry.models, gate=False)
    started = await deck.call("POST", "/api/flywheel/runs", json=RUN)
    run = await finished(deck, started.json()["id"])
    assert run["status"] == "gated" and "count accuracy" in run["error"]
    assert run["steps"][1]["output"]["gate"] == {"passed": False} and run["steps"][2]["status"] == "pending"


async def test_a_job_request_that_does_not_validate_fails_its_step_naming_the_field(deck: Deck) -> None:
    await rate_down(deck)
    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    flywheel.tuner = FakeTuner(deck.gateway.registry.models)
    started = await deck.call("POST", "/api/flywheel/runs", json={**RUN, "hyperparameters": {"epochs": 0}})
    run = await finished(deck, started.json()["id"])
    assert run["status"] == "failed" and run["error"].startswith("fine_tune: version:"), run["error"]


async def test_bad_requests_are_4xx_in_openai_shape(deck: Deck) -> None:
    for body in (
        {"route": "demo"},
        {**RUN, "corrections": "emails"},
        {**RUN, "limit": 2**63},
        {**RUN, "register_as": "no spaces allowed"},
        {**RUN, "from_traces": "colour=red", "dry_run": True},
        {**RUN, "surprise": 1},
    ):
        r = await deck.call("POST", "/api/flywheel/runs", json=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}
    assert (await deck.call("GET", "/api/flywheel/runs/fw_nope")).status_code == 404
    assert (await deck.call("POST", "/api/flywheel/runs/fw_nope/resume")).status_code == 404
    assert (await deck.call("POST", "/api/flywheel/runs", "blue-app", json=RUN)).status_code == 403


def support_trace(trace_id: str) -> TraceRecord:
    record = trace(trace_id, "add", "What is 2 + 3?", "6")
    record.route = "support"
    return record


async def test_a_route_with_a_release_setup_gets_a_canary_of_the_new_version(deck: Deck) -> None:
    assert (await deck.call("POST", "/api/registry/models", json={"name": "calc-bot"})).status_code == 201
    first = await deck.call(
        "POST", "/api/registry/models/calc-bot/versions", json={"provider": "arith", "model": "careful"}
    )
    assert first.status_code == 201, first.text
    assert (
        await deck.call("PUT", "/api/registry/models/calc-bot/aliases/production", json={"version": 1})
    ).status_code == 200
    SQLTraceStore(deck.gateway.db).insert([support_trace("s1")])
    r = await deck.call("POST", "/api/feedback", json={"trace_id": "s1", "value": 0, "correction": "5"})
    assert r.status_code == 201
    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    flywheel.tuner = FakeTuner(deck.gateway.registry.models)
    body = {
        "route": "support",
        "from_traces": "feedback<=0",
        "corrections": "feedback",
        "base": "demo",
        "register_as": "calc-bot",
        "release": {"strategy": {"steps": [10, 50, 100]}},
    }
    plan = (await deck.call("POST", "/api/flywheel/runs", json={**body, "dry_run": True})).json()
    assert "canary release" in plan["steps"][2]["describe"]
    run = await finished(deck, (await deck.call("POST", "/api/flywheel/runs", json=body)).json()["id"])
    assert run["status"] == "succeeded", (run["error"], run["steps"])
    release = run["steps"][2]["output"]
    assert release["kind"] == "canary" and release["version"] == 2 and release["state"] == "canary"
    shown = (await deck.call("GET", f"/api/releases/{release['release']}")).json()
    assert shown["spec"]["candidate"]["model"] == "calc-bot@2" and shown["spec"]["route"] == "support"
    bad = await deck.call("POST", "/api/flywheel/runs", json={**body, "release": {"strategy": "fast"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "release"


async def test_a_run_left_running_by_a_dead_process_is_marked_failed_at_start_and_resumes(deck: Deck) -> None:
    flywheel = deck.gateway.flywheel
    assert flywheel is not None
    # What a server killed during the fine_tune step leaves behind: the run and its step still `running`.
    run = flywheel.store.create(FlywheelRunRequest.model_validate(RUN), team_id=None, actor="key:admin")
    run.step("dataset").start()
    run.step("dataset").finish("succeeded")
    run.step("dataset").output = {"dataset": "counter-flywheel", "version": 1, "ref": "counter-flywheel@1"}
    run.step("fine_tune").start()
    flywheel.store.save(run)
    assert (await deck.call("GET", f"/api/flywheel/runs/{run.id}")).json()["status"] == "running"

    await flywheel.start()  # what the next server does when it starts
    shown = (await deck.call("GET", f"/api/flywheel/runs/{run.id}")).json()
    assert shown["status"] == "failed"
    assert shown["error"].startswith("fine_tune: interrupted: the server running it stopped")
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps["dataset"]["status"] == "succeeded"
    assert steps["fine_tune"]["status"] == "failed" and "resume the run" in steps["fine_tune"]["error"]
    assert steps["release"]["status"] == "pending"
    assert await flywheel.mark_interrupted() == 0  # a failed run is left as it is

    flywheel.tuner = FakeTuner(deck.gateway.registry.models)
    resumed = await deck.call("POST", f"/api/flywheel/runs/{run.id}/resume")
    assert resumed.status_code == 202, resumed.text
    done = await finished(deck, run.id)
    assert done["status"] == "succeeded", (done["error"], done["steps"])
