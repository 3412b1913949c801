"""``/api/flags``: feature flags, their history, and what they give a described request.

Reading needs a viewer key; changing a flag, an admin or a developer of the team owning the
routes it names (see :mod:`lmdeck.delivery.flags.service`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import flags_of
from lmdeck.gateway.errors import json_response
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import require
from lmdeck.protocol import APIError
from lmdeck.protocol.flags import EvaluateRequest, FlagRecord, FlagSpec
from lmdeck.protocol.limits import INT64_MAX

router = APIRouter(prefix="/api/flags", tags=["flags"], route_class=GuardedRoute)


def flag_body(record: FlagRecord) -> dict[str, Any]:
    return {"object": "flag", "name": record.spec.name, **record.model_dump(mode="json")}


@router.get("", summary="Every flag")
async def list_flags(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"object": "list", "data": [flag_body(r) for r in await flags_of(request).records(principal)]}


@router.post("", summary="Create a flag (409 when the name is taken)", status_code=201)
async def create(spec: FlagSpec, request: Request, principal: Principal = Depends(require("developer"))) -> Any:
    record = await flags_of(request).put(spec, principal, expected_version=0)
    return json_response(201, flag_body(record))


@router.post("/evaluate", summary="What the flags give a described request (for debugging targeting)")
async def evaluate(
    body: EvaluateRequest, request: Request, principal: Principal = Depends(require("viewer"))
) -> dict[str, Any]:
    found = flags_of(request).evaluate(body)
    return {"object": "list", "data": [e.model_dump(mode="json") for e in found]}


@router.get("/{name}", summary="A flag")
async def show(name: str, request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return flag_body(await flags_of(request).get(name, principal))


@router.put("/{name}", summary="Create or replace a flag")
async def put(
    name: str,
    spec: FlagSpec,
    request: Request,
    expected_version: int | None = Query(
        None, ge=0, le=INT64_MAX, description="the version last read (0: create only)"
    ),
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    if spec.name != name:
        raise APIError(400, f"the body names flag {spec.name!r}, the path {name!r}: make them the same", param="name")
    return flag_body(await flags_of(request).put(spec, principal, expected_version=expected_version))


@router.post("/{name}/enable", summary="Turn a flag on (its rules and value apply)")
async def enable(name: str, request: Request, principal: Principal = Depends(require("developer"))) -> dict[str, Any]:
    return flag_body(await flags_of(request).set_enabled(name, True, principal))


@router.post("/{name}/disable", summary="Turn a flag off (it serves its default)")
async def disable(name: str, request: Request, principal: Principal = Depends(require("developer"))) -> dict[str, Any]:
    return flag_body(await flags_of(request).set_enabled(name, False, principal))


@router.delete("/{name}", summary="Delete a flag (its history stays)")
async def delete(
    name: str,
    request: Request,
    expected_version: int | None = Query(None, ge=1, le=INT64_MAX, description="the version last read"),
    principal: Principal = Depends(require("developer")),
) -> dict[str, Any]:
    record = await flags_of(request).delete(name, principal, expected_version=expected_version)
    return {"object": "flag.deleted", "name": name, "deleted": True, "version": record.version}


@router.get("/{name}/history", summary="A flag's changes, newest first")
async def history(
    name: str,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
) -> dict[str, Any]:
    entries = await flags_of(request).history(name, limit, principal)
    return {"object": "list", "data": [e.model_dump(mode="json") for e in entries]}
