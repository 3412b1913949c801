"""``require(role)``: the route dependency checks the principal the route guard found."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import PRINCIPAL_STATE, require
from lmdeck.protocol import APIError


def request_with(principal: Principal | None) -> Request:
    request = Request({"type": "http", "method": "GET", "path": "/api/things", "headers": [], "state": {}})
    if principal is not None:
        setattr(request.state, PRINCIPAL_STATE, principal)
    return request


async def test_the_guards_principal_is_returned_when_it_holds_the_role() -> None:
    admin = Principal(key_id="k_admin", role="admin", name="admin")
    assert await require("viewer")(request_with(admin)) is admin


async def test_a_weaker_principal_is_refused_naming_both_roles() -> None:
    viewer = Principal(key_id="k_viewer", role="viewer", name="viewer")
    with pytest.raises(APIError) as refused:
        await require("admin")(request_with(viewer))
    assert refused.value.status == 403
    assert "'admin'" in str(refused.value) and "'viewer'" in str(refused.value)


def test_a_route_without_the_guard_is_told_to_declare_it() -> None:
    router = APIRouter(prefix="/api/things")

    @router.get("")
    async def things(principal: Principal = Depends(require("viewer"))) -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="route_class=GuardedRoute"):
        TestClient(app).get("/api/things")
