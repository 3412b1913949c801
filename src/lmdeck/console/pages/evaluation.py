"""Evaluation: eval runs with each evaluator's mean and confidence interval; a comparison of two runs
(per-evaluator differences with paired tests, the rows whose scores changed); experiments with
per-variant statistics, a chart per experiment and its verdict.

Reads go through the evaluation runtime's run and experiment services with the signed-in principal,
as ``/api/evaluation`` and ``/api/experiments`` do (a run or experiment of another team stays hidden).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from lmdeck.app.services import evaluation_of
from lmdeck.console.auth import ConsoleUser, console_user
from lmdeck.console.page import ConsolePage
from lmdeck.console.rendering import render
from lmdeck.evaluation.runs.service import RunService
from lmdeck.protocol import APIError

router = APIRouter(prefix="/console/evaluation", include_in_schema=False)

#: Runs listed on the index; changed rows shown by a comparison.
RECENT_RUNS = 50
MAX_CHANGED = 200


def _runs(request: Request) -> RunService:
    runs = evaluation_of(request).runs
    if runs is None:
        raise APIError(503, "eval runs need the registry (datasets and prompts)", code="evaluation_unavailable")
    return runs


def _refused(request: Request, user: ConsoleUser, exc: APIError) -> Response:
    return render(request, user, "error.html", {"message": exc.message}, status_code=exc.status)


def variant_chart(variants: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """uPlot's columns for the per-variant chart: x is the variant's position, with its metric mean and error rate."""
    return {
        "x": list(range(len(variants))),
        "names": [v["name"] for v in variants],
        "metric_mean": [v["metric"]["mean"] for v in variants],
        "error_rate": [v["error_rate"] for v in variants],
    }


@router.get("")
async def index(request: Request, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    runtime = evaluation_of(request)
    try:
        runs = await _runs(request).recent(user.principal, RECENT_RUNS)
    except APIError as exc:
        return _refused(request, user, exc)
    experiments = await runtime.experiments.entries(user.principal)
    return render(request, user, "evaluation/index.html", {"runs": runs, "experiments": experiments})


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        found = await _runs(request).get(run_id, user.principal)
    except APIError as exc:
        return _refused(request, user, exc)
    others = [r for r in await _runs(request).recent(user.principal, RECENT_RUNS) if r["id"] != run_id]
    return render(request, user, "evaluation/run.html", {"run": found, "others": others})


@router.get("/compare")
async def compare(
    request: Request,
    a: str = Query(min_length=1, max_length=100, description="the baseline run"),
    b: str = Query(min_length=1, max_length=100, description="the candidate run"),
    user: ConsoleUser = Depends(console_user("viewer")),
) -> Response:
    try:
        comparison = await _runs(request).comparison(a, b, user.principal, MAX_CHANGED)
    except APIError as exc:
        return _refused(request, user, exc)
    return render(request, user, "evaluation/compare.html", {"cmp": comparison.to_dict()})


@router.get("/experiments/{name}")
async def experiment(request: Request, name: str, user: ConsoleUser = Depends(console_user("viewer"))) -> Response:
    try:
        found = await evaluation_of(request).experiments.show(name, user.principal)
    except APIError as exc:
        return _refused(request, user, exc)
    chart = json.dumps(variant_chart(found["variants"]))
    return render(request, user, "evaluation/experiment.html", {"exp": found, "chart_json": chart})


PAGE = ConsolePage(title="Evaluation", path="/console/evaluation", min_role="viewer", router=router, order=40)
