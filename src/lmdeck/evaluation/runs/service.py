"""Serving class of ``/api/evaluation/runs``: start, read and compare eval runs.

A key that is not admin sees the runs of its own team only (another team's run is a 404).
"""

from __future__ import annotations

from typing import Any

import anyio

from lmdeck.evaluation.runs.compare import Comparison, compare_runs
from lmdeck.evaluation.runs.gate import Gate, GateError
from lmdeck.evaluation.runs.runner import EvalRunner
from lmdeck.evaluation.runs.schemas import RunRequest
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.policy.principal import Principal
from lmdeck.protocol import APIError


class RunService:
    def __init__(self, store: RunStore, runner: EvalRunner) -> None:
        self.store = store
        self.runner = runner

    async def start(self, request: RunRequest, principal: Principal, token: str | None) -> dict[str, Any]:
        run = await self.runner.start(request, principal, token)
        return run.to_dict()

    async def _visible(self, run_id: str, principal: Principal) -> RunRecord:
        run = await anyio.to_thread.run_sync(self.store.get, run_id)
        if run is None or (principal.role != "admin" and run.team_id != principal.team_id):
            raise APIError(404, f"no eval run {run_id!r}; list them with `lmdeck eval list`", code="not_found")
        live = self.runner.progress(run_id)
        if live is not None:
            run.completed = live
        return run

    async def get(self, run_id: str, principal: Principal) -> dict[str, Any]:
        return (await self._visible(run_id, principal)).to_dict()

    async def recent(self, principal: Principal, limit: int) -> list[dict[str, Any]]:
        admin = principal.role == "admin"
        runs = await anyio.to_thread.run_sync(
            lambda: self.store.recent(team_id=principal.team_id, all_teams=admin, limit=limit)
        )
        return [r.to_dict() for r in runs]

    async def results(self, run_id: str, principal: Principal) -> list[dict[str, Any]]:
        await self._visible(run_id, principal)
        rows = await anyio.to_thread.run_sync(self.store.results, run_id)
        return [r.model_dump(mode="json") for r in rows]

    async def comparison(self, a: str, b: str, principal: Principal, max_changed: int = 100) -> Comparison:
        run_a, run_b = await self._visible(a, principal), await self._visible(b, principal)
        for run in (run_a, run_b):
            if run.status != "succeeded":
                raise APIError(
                    409, f"eval run {run.id} is {run.status}: compare finished runs", code="run_not_finished"
                )
        rows_a = await anyio.to_thread.run_sync(self.store.results, a)
        rows_b = await anyio.to_thread.run_sync(self.store.results, b)
        return compare_runs(run_a, rows_a, run_b, rows_b, max_changed=max_changed)

    async def gate(self, run_id: str, gate_text: str, principal: Principal, baseline: str | None) -> dict[str, Any]:
        try:
            gate = Gate.parse(gate_text)
        except GateError as exc:
            raise APIError(400, str(exc), param="gate", code="invalid_gate") from None
        run = await self._visible(run_id, principal)
        if run.status != "succeeded":
            raise APIError(409, f"eval run {run.id} is {run.status}: gate finished runs", code="run_not_finished")
        summaries: dict[str, dict[str, Any]] = {run.id: run.summary or {}}
        comparisons: dict[tuple[str, str], Comparison] = {}
        for other in gate.baselines(baseline):
            summaries[other] = (await self._visible(other, principal)).summary or {}
            comparisons[(other, run.id)] = await self.comparison(other, run.id, principal)
        return gate.check(run.id, _Known(summaries, comparisons), baseline).to_dict()


class _Known:
    """Gate sources already fetched."""

    def __init__(self, summaries: dict[str, dict[str, Any]], comparisons: dict[tuple[str, str], Comparison]) -> None:
        self.summaries = summaries
        self.comparisons = comparisons

    def summary(self, run_id: str) -> dict[str, Any]:
        return self.summaries[run_id]

    def comparison(self, baseline: str, run_id: str) -> Comparison:
        return self.comparisons[(baseline, run_id)]
