"""``/api/evaluation/*``: eval runs, comparisons and gates, evaluators, online rules and scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from lmdeck.app.body_schema import documented_body
from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import evaluation_of
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.identity import bearer_token
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.access import OwnershipFields, OwnershipUpdate
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.evaluation import OnlineRule, RunRequest

router = APIRouter(prefix="/api/evaluation", tags=["evaluation"], route_class=GuardedRoute)


def _runs(request: Request) -> Any:
    runtime: EvaluationRuntime = evaluation_of(request)
    if runtime.runs is None:
        raise APIError(503, "eval runs need the registry (datasets and prompts)", code="evaluation_unavailable")
    return runtime.runs


def _rules(request: Request) -> Any:
    runtime = evaluation_of(request)
    if runtime.rules is None:
        raise APIError(503, "online evaluation is not installed in this gateway", code="evaluation_unavailable")
    return runtime.rules


@router.get("/evaluators", summary="The evaluators available, with their options")
async def evaluators(request: Request, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    infos = evaluation_of(request).evaluators.info()
    return {"data": [{"name": i.name, "description": i.description, "options": i.options} for i in infos]}


@router.post("/runs", summary="Start an eval run: a dataset version through a prompt or route", status_code=202)
async def start_run(body: RunRequest, request: Request, principal: Principal = Depends(require("developer"))) -> Any:
    run = await _runs(request).start(body, principal, bearer_token(request))
    return json_response(202, run)


@router.get("/runs", summary="Eval runs, newest first")
async def list_runs(
    request: Request, limit: int = Query(50, ge=1, le=500), principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return {"data": await _runs(request).recent(principal, limit)}


@router.get("/runs/{run_id}", summary="One eval run: status, progress and summary")
async def get_run(run_id: str, request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    result: dict[str, Any] = await _runs(request).get(run_id, principal)
    return result


@router.patch("/runs/{run_id}", summary="Share or unshare a run (its team or an admin), or give it to another team")
async def update_run_owner(
    run_id: str, body: OwnershipUpdate, request: Request, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    result: dict[str, Any] = await _runs(request).update_owner(
        run_id, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )
    return result


@router.get("/runs/{run_id}/results", summary="An eval run's rows: outputs, scores, latency, tokens, cost")
async def run_results(
    run_id: str, request: Request, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    return {"data": await _runs(request).results(run_id, principal)}


@router.get("/runs/{run_id}/gate", summary="Check a quality gate such as 'exact>=0.9, delta(exact)>=-0.01 vs RUN'")
async def gate_run(
    run_id: str,
    request: Request,
    gate: str = Query(..., min_length=1),
    baseline: str | None = Query(None, description="the run delta(), p() clauses compare with by default"),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    result: dict[str, Any] = await _runs(request).gate(run_id, gate, principal, baseline)
    return result


@router.get("/compare", summary="Compare two runs: per-evaluator deltas, paired tests, changed rows")
async def compare(
    request: Request,
    a: str = Query(..., description="the baseline run"),
    b: str = Query(..., description="the candidate run"),
    max_changed: int = Query(100, ge=0, le=10000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    comparison = await _runs(request).comparison(a, b, principal, max_changed)
    result: dict[str, Any] = comparison.to_dict()
    return result


@router.get("/online/rules", summary="Online evaluation rules in force")
async def list_rules(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"data": _rules(request).rules(principal)}


@router.put(
    "/online/rules/{name}",
    summary="Create or replace an online evaluation rule",
    openapi_extra=documented_body(OnlineRule, exclude=("name",)),
)
async def put_rule(
    name: str,
    request: Request,
    body: dict[str, Any] = Body(...),
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    fields = {k: v for k, v in body.items() if k not in ("team", "visibility")}
    try:
        rule = OnlineRule.model_validate({**fields, "name": name})
        owner = OwnershipFields.model_validate({k: v for k, v in body.items() if k in ("team", "visibility")})
    except ValidationError as exc:
        param, message = validation_param(exc.errors())
        raise APIError(400, f"{param}: {message}", param=param, code="invalid_rule") from None
    result: dict[str, Any] = await _rules(request).save(rule, principal, team=owner.team, visibility=owner.visibility)
    return result


@router.patch("/online/rules/{name}", summary="Share or unshare a rule (its team or an admin), or give it away")
async def update_rule_owner(
    name: str, body: OwnershipUpdate, request: Request, principal: Principal = Depends(require("developer"))
) -> dict[str, Any]:
    result: dict[str, Any] = await _rules(request).update_owner(
        name, principal, team=body.team, team_given=body.team_given, visibility=body.visibility
    )
    return result


@router.delete(
    "/online/rules/{name}", summary="Delete an online evaluation rule", status_code=204, response_class=Response
)
async def delete_rule(name: str, request: Request, principal: Principal = Depends(require("developer"))) -> Response:
    await _rules(request).delete(name, principal)
    return Response(status_code=204)


@router.get("/online/scores", summary="Scores given to live traces by online rules, newest first")
async def scores(
    request: Request,
    trace_id: str | None = None,
    rule: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    return {"data": await _rules(request).scores(principal, trace_id, rule, limit)}


@router.get("/online/summary", summary="Mean online score per route, prompt version, model and evaluator")
async def online_summary(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"data": await _rules(request).summary(principal)}
