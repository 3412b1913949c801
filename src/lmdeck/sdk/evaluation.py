"""``client.evaluation``: eval runs, comparisons, gates, evaluators and online rules.

run = client.evaluation.start_run(dataset="arith@1", prompt="calc@2", evaluators=["exact", "numeric"])
run = client.evaluation.wait(run["id"], on_progress=lambda done, total: print(done, total))
run["summary"]["scores"]["exact"]                 # {"mean": 0.93, "low": 0.86, "high": 0.97, ...}
client.evaluation.compare(baseline_id, run["id"])["evaluators"]["exact"]["p_value"]
client.evaluation.gate(run["id"], "exact>=0.9, delta(exact)>=-0.01", baseline=baseline_id)["passed"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Namespace

Progress = Callable[[int, int], None]


def _q(value: str) -> str:
    return quote(value, safe="")


class Evaluation(Namespace):
    """The evaluation API (``/api/evaluation``)."""

    name = "evaluation"

    def evaluators(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/evaluation/evaluators")["data"]
        return data

    def start_run(
        self,
        *,
        dataset: str,
        evaluators: list[str | dict[str, Any]],
        prompt: str | None = None,
        route: str | None = None,
        model: str | None = None,
        name: str | None = None,
        concurrency: int = 4,
        max_rows: int | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """Start a run and return it at once (status ``running``); see :meth:`wait`."""
        body = {
            "dataset": dataset,
            "prompt": prompt,
            "route": route,
            "model": model,
            "evaluators": evaluators,
            "name": name,
            "concurrency": concurrency,
            "max_rows": max_rows,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        run: dict[str, Any] = self.client.post(
            "/api/evaluation/runs", json={k: v for k, v in body.items() if v is not None or k == "temperature"}
        )
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(f"/api/evaluation/runs/{_q(run_id)}")
        return found

    def wait(
        self, run_id: str, *, on_progress: Progress | None = None, poll: float = 0.5, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll until the run is no longer running; ``on_progress(done, total)`` after each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if on_progress is not None:
                on_progress(int(run.get("completed") or 0), int(run.get("row_count") or 0))
            if run.get("status") != "running":
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise LMDeckError(f"eval run {run_id} still running after {timeout}s")
            time.sleep(poll)

    def runs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/evaluation/runs", params={"limit": limit})["data"]
        return data

    def results(self, run_id: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get(f"/api/evaluation/runs/{_q(run_id)}/results")["data"]
        return data

    def compare(self, baseline: str, candidate: str, *, max_changed: int = 100) -> dict[str, Any]:
        """Per-evaluator deltas of ``candidate`` against ``baseline`` with paired tests, and changed rows."""
        found: dict[str, Any] = self.client.get(
            "/api/evaluation/compare", params={"a": baseline, "b": candidate, "max_changed": max_changed}
        )
        return found

    def gate(self, run_id: str, gate: str, *, baseline: str | None = None) -> dict[str, Any]:
        """Check ``gate`` (``exact>=0.9, delta(exact)>=-0.01 vs RUN``) on a finished run."""
        found: dict[str, Any] = self.client.get(
            f"/api/evaluation/runs/{_q(run_id)}/gate", params={"gate": gate, "baseline": baseline}
        )
        return found

    def online_rules(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/evaluation/online/rules")["data"]
        return data

    def set_online_rule(
        self,
        name: str,
        *,
        evaluators: list[str | dict[str, Any]],
        sample_rate: float | str,
        filter: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        body = {"evaluators": evaluators, "sample_rate": sample_rate, "filter": filter or {}, "enabled": enabled}
        rule: dict[str, Any] = self.client.put(f"/api/evaluation/online/rules/{_q(name)}", json=body)
        return rule

    def delete_online_rule(self, name: str) -> None:
        self.client.delete(f"/api/evaluation/online/rules/{_q(name)}")

    def online_scores(
        self, *, trace_id: str | None = None, rule: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {"trace_id": trace_id, "rule": rule, "limit": limit}
        data: list[dict[str, Any]] = self.client.get("/api/evaluation/online/scores", params=params)["data"]
        return data

    def online_summary(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/evaluation/online/summary")["data"]
        return data


NAMESPACE = Evaluation
