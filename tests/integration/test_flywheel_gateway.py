"""The flywheel end to end through a real ``lmdeck serve`` with the bundled demo model.

``scripts/simulate_traffic.py`` sends count and add questions with the official openai SDK, and its
labeller rates each answer and corrects the wrong ones through an annotation queue. Then the CLI:
``lmdeck flywheel run --dry-run`` plans (the traces matched, nothing changed), and ``lmdeck flywheel run
--follow`` cuts the dataset from the corrected count traces and, where fine-tuning jobs are installed,
trains, gates, registers and moves ``counter@candidate``, which then answers through the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lmdeck.testing.servers import GatewayProcess, start_gateway

ROOT = Path(__file__).resolve().parents[2]
SIMULATE = ROOT / "scripts" / "simulate_traffic.py"
FILTER = "feedback<=0 skill=count since=1d"
#: A few optimizer steps, and a gate that asks only "not worse than the base" of the few rows a test makes.
FAST = [
    "--hyperparameters",
    json.dumps({"max_steps": 30, "batch_size": 8, "learning_rate": 0.01, "warmup_steps": 0, "save_steps": 10, "r": 8}),
    "--job",
    json.dumps({"gate": {"validation": "delta(exact)>=0", "min_rows": 1}}),
]


@dataclass
class Simulated:
    gateway: GatewayProcess
    report: dict[str, Any]


def run(args: list[str], gw: GatewayProcess, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LMDECK_BASE_URL": gw.url, "LMDECK_API_KEY": gw.admin_key}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def lmdeck(*args: str, gw: GatewayProcess) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-c", "from lmdeck.cli.main import main; main()", *args], gw)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulated]:
    data = tmp_path_factory.mktemp("flywheel")
    config = {
        "routes": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "counter", "targets": ["registry:counter@candidate"]},  # serves what the flywheel releases
        ],
        "fine_tuning": {"runner": "local"},
    }
    gw = start_gateway(config, data_dir=data, timeout=600)
    try:
        report_path = data / "sim.json"
        sim = run(
            [
                sys.executable,
                str(SIMULATE),
                *("--base-url", gw.url, "--api-key", gw.admin_key, "--model", "demo"),
                *("--count", "24", "--mix", "count=5,add=1", "--seed", "7", "--max-tokens", "48"),
                *("--corrections", "annotations", "--queue", "count-review", "--report", str(report_path)),
            ],
            gw,
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr + gw.log()
        yield Simulated(gw, json.loads(report_path.read_text()))
    finally:
        gw.stop()


def test_the_labeller_rated_every_answer_and_corrected_the_wrong_ones(simulated: Simulated) -> None:
    skills = simulated.report["skills"]
    assert simulated.report["requests"] == 24 and simulated.report["failed"] == 0
    for tally in skills.values():
        assert tally["feedback"] == tally["sent"]
        assert tally["corrections"] == tally["sent"] - tally["right"]
    gw = simulated.gateway
    traces = httpx.get(f"{gw.url}/api/traces", params={"tag": "skill:count"}, headers=gw.headers(), timeout=60)
    assert traces.status_code == 200 and len(traces.json()["data"]) == skills["count"]["sent"]
    queue = httpx.get(f"{gw.url}/api/annotation-queues/count-review", headers=gw.headers(), timeout=60).json()
    assert queue["counts"]["labelled"] == sum(t["corrections"] for t in skills.values())


def test_the_plan_counts_the_corrected_count_traces_and_changes_nothing(simulated: Simulated) -> None:
    gw, wrong = simulated.gateway, simulated.report["skills"]["count"]["corrections"]
    args = ["--route", "demo", "--from-traces", FILTER, "--corrections", "annotations", "--base", "demo"]
    plan = lmdeck("flywheel", "run", *args, "--register-as", "counter", "--dry-run", gw=gw)
    assert plan.returncode == 0, plan.stderr
    assert f"from {wrong} traces" in plan.stdout and f"{wrong} with a correction from annotations" in plan.stdout
    assert "counter@candidate" in plan.stdout
    assert lmdeck("flywheel", "list", "--json", gw=gw).stdout.strip() == "[]"


def test_the_run_makes_a_dataset_of_corrections_then_a_model_that_serves(simulated: Simulated) -> None:
    gw, wrong = simulated.gateway, simulated.report["skills"]["count"]["corrections"]
    args = ["--route", "demo", "--from-traces", FILTER, "--corrections", "annotations", "--base", "demo"]
    done = lmdeck("flywheel", "run", *args, "--register-as", "counter", *FAST, "--follow", gw=gw)
    runs = json.loads(lmdeck("flywheel", "list", "--json", gw=gw).stdout)
    (flywheel_run,) = runs
    dataset = flywheel_run["steps"][0]
    assert dataset["status"] == "succeeded", flywheel_run
    assert dataset["output"]["rows"] == wrong == dataset["output"]["corrected"]
    rows = httpx.get(
        f"{gw.url}/api/registry/datasets/counter-flywheel/versions/1/rows", headers=gw.headers(), timeout=60
    ).json()["data"]
    assert all(r["metadata"]["source"] == "correction" and " so " in r["expected"] for r in rows)

    if "unknown job runner" in done.stderr:
        pytest.skip(f"this gateway has no job runner to train with: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr + gw.log()
    assert "serving: registry:counter@candidate" in done.stdout
    release = flywheel_run["steps"][2]["output"]
    model = httpx.get(f"{gw.url}/api/registry/models/counter", headers=gw.headers(), timeout=60).json()
    assert model["aliases"]["candidate"] == release["version"]
    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key)
    reply = client.chat.completions.with_raw_response.create(
        model="counter",
        messages=[{"role": "user", "content": "How many times does the letter r appear in mirror?"}],
        max_tokens=48,
        extra_headers={"x-request-id": "flywheel-check"},
    )
    assert reply.parse().choices[0].message.content
    trace = gw.trace("flywheel-check")
    assert trace["route"] == "counter" and trace["status_code"] == 200
