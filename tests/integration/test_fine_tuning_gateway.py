"""``/v1/fine_tuning/jobs`` through a real ``lmdeck serve`` with the official ``openai`` SDK: the real
local job runner trains a LoRA adapter of the demo model with tiny settings, and the gate judges it.

The training data is deliberately bad: every answer is the same word. The adapter learns it, so it
"improves" on its own held-out split, but it forgets the skills of the regression set (reversing
and upper-casing words, which the base model does well): the gate refuses it and the job ends ``gated``
with the evidence, and nothing is registered.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI, omit
from openai.types.fine_tuning import FineTuningJob
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.local import skills
from lmdeck.testing.servers import GatewayFactory, GatewayProcess

pytest.importorskip("lmdeck.finetune.runners.local", reason="the local job runner is not installed")

FINAL = {"succeeded", "failed", "cancelled", "gated"}
#: A few optimizer steps at a high learning rate: enough to make the demo model answer one word.
TINY = {
    "max_steps": 30,
    "batch_size": 8,
    "learning_rate": 0.01,
    "warmup_steps": 0,
    "save_steps": 10,
    "r": 8,
    "logging_steps": 5,
}


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory) -> GatewayProcess:
    return gateway([], default_routes=True, fine_tuning={"runner": "local"})


def developer_key(gw: GatewayProcess) -> str:
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin)
    assert team.status_code in (200, 201), team.text
    body = {"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"], "role": "developer"}
    key = httpx.post(f"{gw.url}/api/keys", json=body, headers=admin)
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def dataset(gw: GatewayProcess, key: str, name: str, rows: list[dict[str, Any]]) -> str:
    response = httpx.post(
        f"{gw.url}/api/registry/datasets/{name}/versions",
        json={"rows": rows},
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code in (200, 201), response.text
    return f"{name}@{response.json()['version']}"


def wait_for(client: OpenAI, job_id: str, timeout: float = 900.0) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(1.0)


def cli(gw: GatewayProcess, key: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["fine-tuning", *args, "--base-url", gw.url, "--api-key", key])
    assert result.exit_code == code, result.output
    return result.output


def bad_datasets(gw: GatewayProcess, key: str) -> tuple[str, str]:
    """A training set whose every answer is "banana", and a regression set of skills the base model has."""
    words = [e.prompt for e in skills.heldout_set("count", 40)]
    bad = dataset(gw, key, f"bad-{uuid.uuid4().hex[:6]}", [{"input": w, "expected": "banana"} for w in words])
    regression = dataset(
        gw,
        key,
        f"skills-{uuid.uuid4().hex[:6]}",
        [{"input": e.prompt, "expected": e.answer} for s in ("reverse", "upper") for e in skills.heldout_set(s, 10)],
    )
    return bad, regression


def test_training_file_is_refused_by_name(gw: GatewayProcess) -> None:
    client = OpenAI(base_url=gw.base_url, api_key=developer_key(gw), max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="demo", training_file="file-abc")
    assert "training_dataset" in str(refused.value)


def test_a_bad_dataset_trains_an_adapter_the_gate_refuses(gw: GatewayProcess) -> None:
    key = developer_key(gw)
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)
    bad, regression = bad_datasets(gw, key)
    job = client.fine_tuning.jobs.create(
        model="demo",
        training_file=omit,
        extra_body={
            "training_dataset": bad,
            "regression_dataset": regression,
            "register_as": "banana",
            "hyperparameters": TINY,
            "prep": {"validation_fraction": 0.25, "scrub_pii": False, "near_duplicate_threshold": 1.0},
            "gate": {"min_rows": 5},
        },
    )
    assert job.object == "fine_tuning.job" and job.status == "validating_files"
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [job.id]

    done = wait_for(client, job.id)
    extra = done.model_extra or {}
    assert done.status == "gated", (done.error, extra.get("gate"))
    assert done.fine_tuned_model is None and done.trained_tokens
    gate = extra["gate"]
    regression_clause = gate["regression"]["clauses"][0]
    assert regression_clause["passed"] is False, gate
    assert gate["metrics"]["regression.exact.adapter"] < gate["metrics"]["regression.exact.base"]
    assert extra["progress"]["step"] == 30

    events = client.fine_tuning.jobs.list_events(job.id, limit=200).data
    losses = [
        e.data["train_loss"] for e in reversed(events) if e.type == "metrics" and e.data and e.data.get("train_loss")
    ]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    models = httpx.get(f"{gw.url}/api/registry/models/banana", headers={"authorization": f"Bearer {key}"})
    assert models.status_code == 404

    shown = cli(gw, key, "get", job.id)
    assert "gated" in shown and "gate regression: FAIL delta(exact)>=-0.05" in shown
    assert "Step 30/30: training loss=" in cli(gw, key, "events", job.id, "--limit", "200")


def test_the_cli_follows_a_job_with_a_progress_bar_and_exits_1_when_gated(gw: GatewayProcess) -> None:
    key = developer_key(gw)
    bad, regression = bad_datasets(gw, key)
    options = {
        "prep": {"validation_fraction": 0.25, "scrub_pii": False},
        "gate": {"min_rows": 5},
        "hyperparameters": TINY,
    }
    output = cli(
        gw,
        key,
        "create",
        "--dataset",
        bad,
        "--regression-dataset",
        regression,
        "--options",
        json.dumps(options),
        "--follow",
        code=1,
    )
    assert "created ftjob-" in output
    assert re.search(r"\[#+\] +30/30 +loss \d+\.\d{4}", output), output
    assert "gated" in output and "gate regression: FAIL" in output


def test_a_running_job_cancels_and_another_team_cannot_see_it(gw: GatewayProcess) -> None:
    key = developer_key(gw)
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)
    rows = [{"input": e.prompt, "expected": e.answer} for e in skills.heldout_set("count", 30)]
    training = dataset(gw, key, f"counts-{uuid.uuid4().hex[:6]}", rows)
    job = client.fine_tuning.jobs.create(
        model="demo",
        training_file=omit,
        extra_body={"training_dataset": training, "hyperparameters": {**TINY, "max_steps": 100000}},
    )
    other = OpenAI(base_url=gw.base_url, api_key=developer_key(gw), max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(job.id)
    assert other.fine_tuning.jobs.list().data == []

    deadline = time.monotonic() + 600
    while client.fine_tuning.jobs.retrieve(job.id).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
