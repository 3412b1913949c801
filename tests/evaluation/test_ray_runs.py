"""Eval runs as Ray jobs against a real one-node Ray cluster on loopback and a real gateway on loopback.

The gateway (the fake arithmetic provider of ``conftest``) serves over HTTP on a free port, with
``evaluation.ray_gateway_url`` pointing at itself; the cluster is the session's
:class:`lmdeck.testing.ray_head.RayHead` (``ray_address`` in tests/conftest.py), skipped, saying why,
when Ray cannot start here.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.settings import Settings
from lmdeck.testing.servers import free_port
from lmdeck.tracing.memory import MemoryTraceSink

from .conftest import ADMIN_KEY, fake_providers

PATIENCE = 240.0
EVALUATORS = ["exact", "numeric", "judge=llm_judge:route=calc", "embedding_similarity:route=vectors"]


@dataclass
class Served:
    """A gateway serving on loopback, and a client with the admin key."""

    gateway: Gateway
    server: uvicorn.Server
    client: httpx.Client


@pytest.fixture
def served(make_settings: Callable[..., Settings], ray_address: str) -> Iterator[Served]:
    port = free_port()
    settings = make_settings(
        evaluation={"ray_gateway_url": f"http://127.0.0.1:{port}"},
        fine_tuning={"ray_address": ray_address, "ray_python": sys.executable, "ray_num_cpus": 0.5},
        routes=[
            {"name": "calc", "targets": [{"provider": "arith", "model": "careful"}]},
            {"name": "sloppy", "targets": [{"provider": "arith", "model": "careless"}]},
            {"name": "slow", "targets": [{"provider": "arith", "model": "careful", "options": {"delay": 1.0}}]},
            {"name": "vectors", "kind": "embeddings", "targets": [{"provider": "arith", "model": "bow"}]},
        ],
    )
    gateway = build_gateway(settings, providers=fake_providers(), sink=MemoryTraceSink(), announce_admin_key=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(gateway=gateway), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test gateway did not start"
        time.sleep(0.05)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        try:
            yield Served(gateway, server, client)
        finally:
            server.should_exit = True
            thread.join(timeout=60)


def finished(client: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE
    while True:
        run: dict[str, Any] = client.get(f"/api/evaluation/runs/{run_id}").json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, f"run {run_id} still running after {PATIENCE} s: {run}"
        time.sleep(0.5)


def test_a_run_on_ray_scores_every_row_as_the_local_runner_does(served: Served) -> None:
    client = served.client
    rows = [{"input": f"What is {i} + {i}?", "expected": str(2 * i)} for i in range(8)]
    assert client.post("/api/registry/datasets/doubles/versions", json={"rows": rows}).status_code in (200, 201)
    body = {"dataset": "doubles@1", "route": "sloppy", "evaluators": EVALUATORS, "concurrency": 2}

    local = client.post("/api/evaluation/runs", json=body).json()
    remote = client.post("/api/evaluation/runs", json={**body, "runner": "ray"})
    assert remote.status_code == 202, remote.text
    local, ray = finished(client, local["id"]), finished(client, remote.json()["id"])

    assert ray["status"] == "succeeded", ray
    assert ray["completed"] == ray["row_count"] == 8
    assert ray["summary"]["scores"] == local["summary"]["scores"]
    assert 0 < ray["summary"]["scores"]["exact"]["mean"] < 1  # the careless model gets some wrong
    assert ray["summary"]["tokens"] == local["summary"]["tokens"] == {"input": 8 * 7, "output": 8 * 2}
    got = {r["idx"]: r for r in client.get(f"/api/evaluation/runs/{ray['id']}/results").json()["data"]}
    want = {r["idx"]: r for r in client.get(f"/api/evaluation/runs/{local['id']}/results").json()["data"]}
    assert {i: (r["output"], r["scores"]) for i, r in got.items()} == {
        i: (r["output"], r["scores"]) for i, r in want.items()
    }
    # The run's token was revoked at its end.
    assert served.gateway.evaluation.identity._principals.keys() == {served.gateway.evaluation.identity.token}


def test_stopping_the_gateway_stops_the_ray_job_and_cancels_the_run(served: Served, ray_address: str) -> None:
    from ray.job_submission import JobSubmissionClient

    client = served.client
    rows = [{"input": f"What is {i} + 1?", "expected": str(i + 1)} for i in range(200)]
    client.post("/api/registry/datasets/long/versions", json={"rows": rows})
    body = {"dataset": "long@1", "route": "slow", "evaluators": ["exact"], "concurrency": 1, "runner": "ray"}
    run_id = client.post("/api/evaluation/runs", json=body).json()["id"]
    deadline = time.monotonic() + PATIENCE
    while client.get(f"/api/evaluation/runs/{run_id}").json()["completed"] < 1:
        assert time.monotonic() < deadline, "no row came back from the Ray job"
        time.sleep(0.5)

    jobs = JobSubmissionClient(ray_address)
    (job,) = [j for j in jobs.list_jobs() if (j.metadata or {}).get("lmdeck_eval_run") == run_id]
    served.server.should_exit = True
    deadline = time.monotonic() + PATIENCE
    while str(jobs.get_job_status(job.submission_id).value) in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, "the Ray job still runs after the gateway stopped"
        time.sleep(0.5)
    assert str(jobs.get_job_status(job.submission_id).value) == "STOPPED"
    assert served.gateway.evaluation.run_store.get(run_id).status == "cancelled"
