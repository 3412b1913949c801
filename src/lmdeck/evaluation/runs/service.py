"""Serving class of ``/api/evaluation/runs``: start, read and compare eval runs.

A run belongs to the team that started it (an admin may start one for another team); a key
that is not admin sees its own team's runs and shared ones (another team's run is a 404).
"""

from __future__ import annotations

from typing import Any

import anyio

from lmdeck.evaluation.runs.compare import Comparison, compare_runs
from lmdeck.evaluation.runs.gate import Gate, GateError
from lmdeck.evaluation.runs.runner import EvalRunner
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import check_read, owner_after_update, owner_for_new, visible_condition, visible_params
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.evaluation import RunRequest
from lmdeck.registry.owners import resolve_team


class RunService:
    def __init__(self, store: RunStore, runner: EvalRunner) -> None:
        self.store = store
        self.runner = runner

    async def start(self, request: RunRequest, principal: Principal, token: str | None) -> dict[str, Any]:
        def owner() -> Any:
            with self.store.db.engine.connect() as conn:
                return owner_for_new(principal, resolve_team(conn, request.team), request.visibility)

        run = await self.runner.start(request, principal, token, await anyio.to_thread.run_sync(owner))
        return run.to_dict()

    async def _visible(self, run_id: str, principal: Principal) -> RunRecord:
        run = await anyio.to_thread.run_sync(self.store.get, run_id)
        check_read(principal, run.owner if run is not None else None, lambda: _missing(run_id))
        assert run is not None
        live = self.runner.progress(run_id)
        if live is not None:
            run.completed = live
        return run

    async def get(self, run_id: str, principal: Principal) -> dict[str, Any]:
        return (await self._visible(run_id, principal)).to_dict()

    async def recent(self, principal: Principal, limit: int) -> list[dict[str, Any]]:
        where, params = visible_condition(principal), visible_params(principal)
        runs = await anyio.to_thread.run_sync(lambda: self.store.recent(where=where, params=params, limit=limit))
        return [r.to_dict() for r in runs]

    async def update_owner(
        self,
        run_id: str,
        principal: Principal,
        *,
        team: str | None = None,
        team_given: bool = False,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Share, unshare or (admins) give a run to another team."""
        run = await self._visible(run_id, principal)

        def write() -> None:
            with self.store.db.engine.connect() as conn:
                resolved = resolve_team(conn, team) if team_given else None
            changed = owner_after_update(
                principal,
                run.owner,
                f"eval run {run_id!r}",
                team=resolved,
                team_given=team_given,
                visibility=visibility,
            )
            self.store.set_owner(run_id, changed)

        await anyio.to_thread.run_sync(write)
        return await self.get(run_id, principal)

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


def _missing(run_id: str) -> APIError:
    return APIError(404, f"no eval run {run_id!r}; list them with `lmdeck eval list`", code="not_found")


class _Known:
    """Gate sources already fetched."""

    def __init__(self, summaries: dict[str, dict[str, Any]], comparisons: dict[tuple[str, str], Comparison]) -> None:
        self.summaries = summaries
        self.comparisons = comparisons

    def summary(self, run_id: str) -> dict[str, Any]:
        return self.summaries[run_id]

    def comparison(self, baseline: str, run_id: str) -> Comparison:
        return self.comparisons[(baseline, run_id)]
