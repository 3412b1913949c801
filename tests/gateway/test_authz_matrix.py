"""The authorization matrix: every route of the fully built app, for every kind of caller.

Each route is either public (listed in PUBLIC below) or declares its permission
with ``Depends(require(role))``; the expected status for each caller follows from
that declared role. A route added without either fails
``test_every_route_declares_its_permission``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from lmdeck.gateway.app import create_app
from lmdeck.gateway.components import build_gateway
from lmdeck.policy.auth import PIPELINE_PERMISSION, declared_role
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.policy.principal import Principal, Role
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_MATRIX_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-matrix-Hw4Nq8Zt2Lc6Rv9Bx3Km7Pj1Dy5Gs0Fa"

#: Routes anyone may call without a key.
PUBLIC = {
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}

#: Caller → the role its key holds, or None for a caller that must be refused with 401.
CALLERS: dict[str, Role | None] = {
    "no key": None,
    "bad key": None,
    "expired": None,
    "revoked": None,
    "inference": "inference",
    "viewer": "viewer",
    "developer": "developer",
    "admin": "admin",
}

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
PER_REQUEST_SECONDS = 15.0


def _roles_in(dependant: Dependant) -> list[Role]:
    roles = []
    for sub in dependant.dependencies:
        if sub.call is not None:
            role = declared_role(sub.call)
            if role is not None:
                roles.append(role)
        roles += _roles_in(sub)
    return roles


def declared(route: Any) -> Role | None:
    """The strongest role a route asks for (None for a route that is not a FastAPI endpoint)."""
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    order: list[Role] = ["admin", "developer", "viewer", "inference"]
    roles = _roles_in(dependant)
    in_pipeline = (getattr(route, "openapi_extra", None) or {}).get(PIPELINE_PERMISSION)
    if in_pipeline is not None:
        roles.append(in_pipeline)
    return min(roles, key=order.index) if roles else None


def flat_routes(app: FastAPI) -> list[Any]:
    """Every route of the app, routers included (newer FastAPI includes routers lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+(:[^}]+)?\}", "no-such-id", path)


def endpoints(app: FastAPI) -> list[tuple[str, str, Any]]:
    out = []
    for route in flat_routes(app):
        methods = sorted((getattr(route, "methods", None) or {"GET"}) - SKIPPED_METHODS)
        path = getattr(route, "path", None)
        if path is None:
            raise AssertionError(f"{route!r} has no path: list it in PUBLIC or give it a require() dependency")
        for method in methods:
            out.append((method, path, route))
    return out


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class Matrix:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, keys: dict[str, str | None]) -> None:
        self.app = app
        self.http = http
        self.keys = keys

    async def call(self, method: str, path: str, caller: str) -> httpx.Response:
        key = self.keys[caller]
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body: Any = {} if method in ("POST", "PUT", "PATCH") else None
        request = self.http.request(method, concrete(path), headers=headers, json=body)
        try:
            return await asyncio.wait_for(request, PER_REQUEST_SECONDS)
        except TimeoutError:
            raise AssertionError(f"{method} {path} as {caller}: no answer in {PER_REQUEST_SECONDS}s") from None


@pytest.fixture
async def matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Matrix]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    store = IdentityStore(gateway.db)
    keys: dict[str, str | None] = {"no key": None, "bad key": "sk-lmdeck-not-a-key", "admin": ADMIN_KEY}
    for role in ("inference", "viewer", "developer"):
        keys[role] = store.create_key(f"matrix {role}", role)[1]
    keys["expired"] = store.create_key("matrix expired", "admin", expires_at=time.time() - 60)[1]
    revoked, keys["revoked"] = store.create_key("matrix revoked", "admin")
    store.revoke_key(revoked.id)
    async with in_process_client(app) as http:
        yield Matrix(app, http, keys)


def undeclared(app: FastAPI) -> list[str]:
    return [
        f"{method} {path}" for method, path, route in endpoints(app) if path not in PUBLIC and declared(route) is None
    ]


async def test_every_route_declares_its_permission(matrix: Matrix) -> None:
    missing = undeclared(matrix.app)
    assert not missing, (
        "routes without a permission: add Depends(require('<role>')) from lmdeck.policy.auth, "
        f"or list a truly public route in PUBLIC: {missing}"
    )


async def test_a_route_added_without_a_permission_is_caught(matrix: Matrix) -> None:
    from fastapi import APIRouter

    extra = APIRouter(prefix="/api/unguarded")

    @extra.get("/things")
    async def things() -> dict[str, str]:
        return {}

    matrix.app.include_router(extra)
    assert undeclared(matrix.app) == ["GET /api/unguarded/things"]


async def test_public_routes_need_no_key(matrix: Matrix) -> None:
    for method, path, _ in endpoints(matrix.app):
        if path in PUBLIC:
            response = await matrix.call(method, path, "no key")
            assert response.status_code not in (401, 403), f"{method} {path}"


async def test_each_caller_gets_what_the_declared_role_allows(matrix: Matrix) -> None:
    problems = []
    checked = 0
    for method, path, route in endpoints(matrix.app):
        role = declared(route)
        if path in PUBLIC or role is None:
            continue
        for caller, held in CALLERS.items():
            response = await matrix.call(method, path, caller)
            status = response.status_code
            checked += 1
            if held is None:
                ok = status == 401
                wanted = "401"
            elif Principal(key_id="k", role=held).at_least(role):
                ok = status not in (401, 403) and status < 500
                wanted = "neither 401/403 nor 5xx"
            else:
                ok = status == 403
                wanted = "403"
            if not ok:
                problems.append(f"{method} {path} (needs {role}) as {caller}: {status}, wanted {wanted}")
            if status in (401, 403):
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}, (method, path)
    assert checked > 0
    assert not problems, "\n".join(problems)
