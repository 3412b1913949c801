"""The console's fine-tuning page, in process: jobs (a gated one with its gate, data card and loss curve,
a succeeded one linking its registered version) and a flywheel run with its steps, each seen only by
its own team. Jobs and runs are written straight into their stores: nothing trains here.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.console.loss_chart import loss_chart, loss_points
from lmdeck.finetune.flywheel import FlywheelStore
from lmdeck.finetune.jobs.store import JobRecord, RunnerState
from lmdeck.protocol.fine_tuning import FineTuningJob, FineTuningJobCreate, JobProgress
from lmdeck.protocol.flywheel import FlywheelRunRequest
from lmdeck.protocol.training import DataCard, LengthStats, PrepOptions
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_FT_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-ft-Qw3Er4Ty5Ui6Op7As8Df9Gh0Jk"


@dataclass
class Console:
    http: httpx.AsyncClient
    keys: dict[str, str]
    ids: dict[str, str]

    async def sign_in(self, who: str) -> None:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrf_token": token.group(1), "api_key": self.keys[who], "next": "/console/finetuning"}
        assert (await self.http.post("/console/login", data=data)).status_code == 303


def _job(job_id: str, team: str, status: str, **fields: object) -> JobRecord:
    request = FineTuningJobCreate(model="demo", training_dataset="count-fixes@1", register_as="counter")
    job = FineTuningJob.model_validate(
        {
            "id": job_id,
            "created_at": int(time.time()),
            "model": "demo",
            "status": status,
            "hyperparameters": {},
            "seed": 0,
            "training_file": "count-fixes@1",
            "training_dataset": "count-fixes@1",
            "register_as": "counter",
            "runner": "local",
            "team_id": team,
            **fields,
        }
    )
    return JobRecord(job, request, None, RunnerState())


GATE = {
    "passed": False,
    "validation": {
        "gate": "delta_low(exact)>0",
        "run_id": "run_a",
        "passed": False,
        "clauses": [
            {
                "clause": "delta_low(exact)>0",
                "actual": -0.125,
                "passed": False,
                "reason": "delta_low(exact) = -0.1250, needs > 0",
                "low": -0.125,
                "high": 0.25,
                "rows": 12,
            }
        ],
    },
    "metrics": {"validation.exact.base": 0.25, "validation.exact.adapter": 0.3125},
}


def _card() -> DataCard:
    return DataCard(
        dataset="count-fixes@1",
        base_model="demo",
        chat_template="demo",
        options=PrepOptions(),
        rows_in=40,
        train=30,
        validation=6,
        dropped={"exact_duplicate": 3, "too_long": 1},
        strata={"count": {"train": 30, "validation": 6}},
        lengths={"train": LengthStats(count=30, min=8, mean=14.5, p50=14, p95=20, max=22)},
        created_at=time.time(),
    )


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        identities = gateway.policy.identities
        red, blue = identities.create_team("red"), identities.create_team("blue")
        keys = {"admin": ADMIN_KEY}
        _, keys["red"] = identities.create_key("red viewer", "viewer", team_id=red.id)
        _, keys["blue"] = identities.create_key("blue viewer", "viewer", team_id=blue.id)
        gateway.policy.keys.load()
        assert gateway.finetune is not None and gateway.flywheel is not None
        jobs = gateway.finetune.service.store
        progress = JobProgress(stage="done", step=30, total_steps=30, loss=0.4321)
        jobs.create(_job("ftjob_gated", red.id, "gated", progress=progress, gate=GATE, data_card=_card()))
        for step, loss in ((10, 2.0), (20, 1.0), (30, 0.4321)):
            jobs.add_event("ftjob_gated", f"step {step}", type="metrics", data={"step": step, "train_loss": loss})
        jobs.create(_job("ftjob_done", red.id, "succeeded", fine_tuned_model="counter@2", progress=progress))
        jobs.create(_job("ftjob_blue", blue.id, "running"))
        flywheel: FlywheelStore = gateway.flywheel.store
        spec = FlywheelRunRequest(route="counter", base="demo", register_as="counter")
        run = flywheel.create(spec, team_id=red.id, actor="red viewer")
        run.steps[0].start()
        run.steps[0].output = {"dataset": "counter-flywheel@1", "rows": 36}
        run.steps[0].finish("succeeded")
        run.steps[1].start()
        run.steps[1].output = {"job_id": "ftjob_gated"}
        run.steps[1].finish("gated", error="the gate refused the adapter")
        run.status, run.error = "gated", "the gate refused the adapter"
        flywheel.save(run)
        other = flywheel.create(spec, team_id=blue.id, actor="blue viewer")
        yield Console(http, keys, {"run": run.id, "blue_run": other.id})


async def test_the_index_lists_a_teams_jobs_and_flywheel_runs(console: Console) -> None:
    await console.sign_in("red")
    page = await console.http.get("/console/finetuning")
    assert page.status_code == 200
    assert 'href="/console/finetuning"' in page.text  # the navigation entry
    gated = re.search(r'<tr data-job="ftjob_gated">(.*?)</tr>', page.text, re.S)
    assert gated is not None
    assert re.search(r">gated<.*>demo<.*>count-fixes@1<.*>30/30<.*>0\.4321<", gated.group(1)), gated.group(1)
    done = re.search(r'<tr data-job="ftjob_done">(.*?)</tr>', page.text, re.S)
    assert done is not None and '<a href="/console/registry/models/counter">counter@2</a>' in done.group(1)
    assert "ftjob_blue" not in page.text
    run = re.search(rf'<tr data-flywheel="{console.ids["run"]}">(.*?)</tr>', page.text, re.S)
    assert run is not None
    assert re.search(r">gated<.*>counter<.*>counter<.*>fine_tune<.*the gate refused", run.group(1)), run.group(1)
    assert console.ids["blue_run"] not in page.text


async def test_a_gated_job_shows_its_stages_loss_curve_gate_and_data_card(console: Console) -> None:
    await console.sign_in("red")
    page = await console.http.get("/console/finetuning/jobs/ftjob_gated")
    assert page.status_code == 200
    assert 'id="job-status">gated<' in page.text
    assert '<li data-stage="done" class="stage-current">' in page.text
    assert '<li data-stage="train" class="stage-done">' in page.text
    points = re.search(r'<polyline [^>]*points="([^"]+)"', page.text)
    assert points is not None and points.group(1) == "0.0,0.0 300.0,102.0 600.0,160.0"
    clause = re.search(r'<tr data-gate="validation" data-clause="delta_low\(exact\)&gt;0">(.*?)</tr>', page.text, re.S)
    assert clause is not None
    assert "-0.1250" in clause.group(1) and "[-0.1250, 0.2500]" in clause.group(1) and "failed" in clause.group(1)
    assert '<tr data-metric="validation.exact.adapter"><td>validation.exact.adapter</td><td>0.3125</td>' in page.text
    assert "40 rows in · 30 train · 6 validation" in page.text
    assert '<span data-dropped="exact_duplicate">exact_duplicate 3</span>' in page.text
    assert '<tr data-stratum="count"><td>count</td><td>30</td><td>6</td></tr>' in page.text
    assert re.search(r'<tr data-lengths="train"><td>train</td><td>30</td><td>8</td><td>14\.5</td>', page.text)

    done = await console.http.get("/console/finetuning/jobs/ftjob_done")
    assert '<a href="/console/registry/models/counter">counter@2</a>' in done.text
    assert "No training steps recorded yet." in done.text


async def test_a_flywheel_run_shows_its_steps(console: Console) -> None:
    await console.sign_in("red")
    page = await console.http.get(f"/console/finetuning/flywheel/{console.ids['run']}")
    assert page.status_code == 200
    dataset = re.search(r'<tr data-step="dataset">(.*?)</tr>', page.text, re.S)
    assert dataset is not None
    assert re.search(r"succeeded.*dataset: counter-flywheel@1 · rows: 36.*\d+\.\d s", dataset.group(1))
    tune = re.search(r'<tr data-step="fine_tune">(.*?)</tr>', page.text, re.S)
    assert tune is not None and '<a href="/console/finetuning/jobs/ftjob_gated">ftjob_gated</a>' in tune.group(1)
    assert "the gate refused the adapter" in tune.group(1)


async def test_another_teams_job_or_run_is_the_not_found_page(console: Console) -> None:
    await console.sign_in("blue")
    for path in ("/console/finetuning/jobs/ftjob_gated", f"/console/finetuning/flywheel/{console.ids['run']}"):
        page = await console.http.get(path)
        assert page.status_code == 404 and "<h1>Not found</h1>" in page.text, path
    assert (await console.http.get("/console/finetuning/jobs/ftjob_blue")).status_code == 200
    await console.sign_in("admin")
    assert (await console.http.get("/console/finetuning/jobs/ftjob_gated")).status_code == 200


def test_the_loss_chart_keeps_one_point_per_step_in_step_order() -> None:
    events = [{"step": 3, "train_loss": 1.0}, None, {"step": 1, "train_loss": 3.0}, {"step": 3, "train_loss": 2.0}]
    assert loss_points(events) == [(1, 3.0), (3, 2.0)]
    chart = loss_chart(events)
    assert chart is not None and chart.points == "0.0,0.0 600.0,160.0" and chart.steps == (1, 3)
    assert loss_chart([{"message": "no step"}]) is None
    flat = loss_chart([{"step": 5, "train_loss": 1.0}])
    assert flat is not None and flat.points == "0.0,0.0"
