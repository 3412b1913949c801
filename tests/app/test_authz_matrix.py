"""The authorization matrix: every route of the fully built app, for every kind of caller.

Each route is either public (listed in PUBLIC below) or declares its permission
with ``Depends(require(role))``; the expected status for each caller follows from
that declared role. A route added without either fails
``test_every_route_declares_its_permission``.

Then ownership: every route naming an owned resource (``RESOURCE_ROUTES``; a new one
fails ``test_every_route_of_an_owned_resource_is_in_the_ownership_matrix``) for callers
of the owning team, another team, admin, viewers and inference, private and shared; and
who may change where a route's traffic goes (``TRAFFIC``).
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
from sqlalchemy import text

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.evaluation.optimize.store import OptimizationStore
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.auth import PIPELINE_PERMISSION, declared_role
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.protocol.access import Role
from lmdeck.protocol.optimization import OptimizationProgress, OptimizationRecord
from lmdeck.protocol.traces import TraceRecord
from lmdeck.protocol.training import DataCard, PrepOptions
from lmdeck.registry.datasets import DatasetStore
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink
from lmdeck.tracing.sql_store import SQLTraceStore

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
#: A hang detector, not a speed test: generous enough for a loaded machine.
PER_REQUEST_SECONDS = 120.0


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


#: The matrix judges roles, not speed: on a loaded machine an analytics query (sessions, spend, summaries)
#: may wait longer than the default 10 s, and its 503 would read as a fault of the route.
PATIENT: dict[str, Any] = {"analytics_timeout_s": 600.0, "analytics_queue": 1000}


@pytest.fixture
async def matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Matrix]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}, "tracing": PATIENT}
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
                # Anthropic's Messages API answers in Anthropic's error shape.
                shape = {"message", "type"} if path.startswith("/v1/messages") else {"message", "type", "param", "code"}
                assert set(response.json()["error"]) == shape, (method, path)
    assert checked > 0
    assert not problems, "\n".join(problems)


#: Management routes that the matrix above must reach under ``/api`` (``/v1`` is only the
#: OpenAI-compatible API and OTLP's standard ``POST /v1/traces``).
MANAGEMENT_ROUTES = {
    ("GET", "/api/releases"),
    ("POST", "/api/releases"),
    ("POST", "/api/releases/analyze"),
    ("GET", "/api/releases/{name}"),
    ("POST", "/api/releases/{name}/{action}"),
    ("GET", "/api/releases/{name}/shadow"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/{session_id}"),
    ("GET", "/api/traces/{trace_id}/tree"),
    ("GET", "/api/alerts"),
    ("POST", "/api/alerts/silences"),
    ("PUT", "/api/alerts/rules/{name}"),
    ("PUT", "/api/alerts/channels/{name}"),
    ("POST", "/api/alerts/{alert_id}/ack"),
    ("GET", "/api/flags"),
    ("POST", "/api/flags"),
    ("POST", "/api/flags/evaluate"),
    ("PUT", "/api/flags/{name}"),
    ("GET", "/api/annotation-queues"),
    ("PUT", "/api/annotation-queues/{name}"),
    ("POST", "/api/annotation-queues/{name}/items/{item_id}/label"),
    ("GET", "/api/drift/report"),
}

#: Every route under ``/v1``: the OpenAI-compatible API and OTLP/HTTP's standard trace path.
PROTOCOL_ROUTES = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model:path}"),
    ("POST", "/v1/traces"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/responses/{response_id}"),
    ("DELETE", "/v1/responses/{response_id}"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/{file_id}"),
    ("GET", "/v1/files/{file_id}/content"),
    ("DELETE", "/v1/files/{file_id}"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/batches/{batch_id}"),
    ("POST", "/v1/batches/{batch_id}/cancel"),
    ("POST", "/v1/moderations"),
    ("POST", "/v1/fine_tuning/jobs"),
    ("GET", "/v1/fine_tuning/jobs"),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}"),
    ("POST", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel"),
    ("POST", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/resume"),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events"),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
}


async def test_management_routes_are_in_the_matrix_under_api(matrix: Matrix) -> None:
    checked = {(method, path) for method, path, route in endpoints(matrix.app) if declared(route) is not None}
    assert not MANAGEMENT_ROUTES - checked, sorted(MANAGEMENT_ROUTES - checked)


async def test_only_protocol_routes_live_under_v1(matrix: Matrix) -> None:
    under_v1 = {(method, path) for method, path, _ in endpoints(matrix.app) if path.startswith("/v1/")}
    assert under_v1 == PROTOCOL_ROUTES, (
        "management routes belong under /api (secret-reference refusal, the admin error shape): "
        f"{sorted(under_v1 - PROTOCOL_ROUTES)}"
    )


# -- resource ownership ----------------------------------------------------------------------------
#
# Every route that names an owned resource (a prompt, model, dataset, experiment, eval run or online
# rule), for callers of the owning team, another team, an admin, viewers and an inference key, on
# reads and writes, with the resource private to its team and then shared.

OWNER_TEAM, OTHER_TEAM = "team_a", "team_b"

#: Caller → (role, team).
OWNERSHIP_CALLERS: dict[str, tuple[Role, str | None]] = {
    "owning team": ("developer", OWNER_TEAM),
    "another team": ("developer", OTHER_TEAM),
    "admin": ("admin", None),
    "viewer": ("viewer", OWNER_TEAM),
    "another team's viewer": ("viewer", OTHER_TEAM),
    "inference": ("inference", OWNER_TEAM),
}

PROMPT_SPEC = {"messages": [{"role": "user", "content": "Say {{ word }}"}], "variables": {"word": "string"}}
MODEL_SPEC = {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
NOWHERE = {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
RUN_ID = "run_owned_by_team_a"
OPTIMIZATION_ID = "opt_of_prompt_a"
OPTIMIZE = {
    "label": "staging",
    "dataset": "dataset-words@1",
    "route": "route-a",
    "evaluators": ["exact"],
    "demos": 0,
    "candidates": 1,
}
#: The body of a PATCH that keeps the resource as it is (shared or not) in this pass of the matrix.
KEEP = {"visibility": "keep"}

#: (method, route path) → (the concrete path for team A's resource, body, whether it may create).
RESOURCE_ROUTES: dict[tuple[str, str], tuple[str, Any, bool]] = {
    ("GET", "/api/registry/prompts/{name}"): ("/api/registry/prompts/prompt-a", None, False),
    ("PATCH", "/api/registry/prompts/{name}"): ("/api/registry/prompts/prompt-a", KEEP, False),
    ("POST", "/api/registry/prompts/{name}/versions"): ("/api/registry/prompts/prompt-a/versions", PROMPT_SPEC, True),
    ("GET", "/api/registry/prompts/{name}/versions/{version}"): (
        "/api/registry/prompts/prompt-a/versions/1",
        None,
        False,
    ),
    ("GET", "/api/registry/prompts/{name}/resolve"): (
        "/api/registry/prompts/prompt-a/resolve?label=staging",
        None,
        False,
    ),
    ("POST", "/api/registry/prompts/{name}/render"): (
        "/api/registry/prompts/prompt-a/render",
        {"label": "staging", "variables": {"word": "hi"}},
        False,
    ),
    ("GET", "/api/registry/prompts/{name}/diff"): ("/api/registry/prompts/prompt-a/diff?from=1&to=2", None, False),
    ("PUT", "/api/registry/prompts/{name}/labels/{label}"): (
        "/api/registry/prompts/prompt-a/labels/staging",
        {"version": 1},
        False,
    ),
    ("DELETE", "/api/registry/prompts/{name}/labels/{label}"): (
        "/api/registry/prompts/prompt-a/labels/staging",
        None,
        False,
    ),
    ("POST", "/api/registry/prompts/{name}/labels/{label}/rollback"): (
        "/api/registry/prompts/prompt-a/labels/staging/rollback",
        {},
        False,
    ),
    ("GET", "/api/registry/prompts/{name}/history"): ("/api/registry/prompts/prompt-a/history", None, False),
    ("POST", "/api/registry/prompts/{name}/optimize"): ("/api/registry/prompts/prompt-a/optimize", OPTIMIZE, False),
    ("GET", "/api/registry/prompts/{name}/optimizations"): (
        "/api/registry/prompts/prompt-a/optimizations",
        None,
        False,
    ),
    ("GET", "/api/registry/prompts/{name}/optimizations/{optimization_id}"): (
        f"/api/registry/prompts/prompt-a/optimizations/{OPTIMIZATION_ID}",
        None,
        False,
    ),
    ("GET", "/api/registry/models/{name}"): ("/api/registry/models/model-a", None, False),
    ("PATCH", "/api/registry/models/{name}"): ("/api/registry/models/model-a", KEEP, False),
    ("POST", "/api/registry/models/{name}/versions"): ("/api/registry/models/model-a/versions", MODEL_SPEC, True),
    ("GET", "/api/registry/models/{name}/versions/{version}"): ("/api/registry/models/model-a/versions/1", None, False),
    ("PUT", "/api/registry/models/{name}/aliases/{alias}"): (
        "/api/registry/models/model-a/aliases/staging",
        {"version": 1},
        False,
    ),
    ("DELETE", "/api/registry/models/{name}/aliases/{alias}"): (
        "/api/registry/models/model-a/aliases/staging",
        None,
        False,
    ),
    ("POST", "/api/registry/models/{name}/aliases/{alias}/rollback"): (
        "/api/registry/models/model-a/aliases/staging/rollback",
        {},
        False,
    ),
    ("GET", "/api/registry/models/{name}/history"): ("/api/registry/models/model-a/history", None, False),
    ("GET", "/api/registry/datasets/{name}"): ("/api/registry/datasets/dataset-a", None, False),
    ("PATCH", "/api/registry/datasets/{name}"): ("/api/registry/datasets/dataset-a", KEEP, False),
    ("POST", "/api/registry/datasets/{name}/versions"): (
        "/api/registry/datasets/dataset-a/versions",
        {"rows": [{"input": "2+2", "expected": "4"}]},
        True,
    ),
    ("POST", "/api/registry/datasets/{name}/from-traces"): (
        "/api/registry/datasets/dataset-a/from-traces",
        {"filter": "route=route-a"},
        True,
    ),
    ("GET", "/api/registry/datasets/{name}/versions/{ref}"): (
        "/api/registry/datasets/dataset-a/versions/1",
        None,
        False,
    ),
    ("GET", "/api/registry/datasets/{name}/versions/{ref}/rows"): (
        "/api/registry/datasets/dataset-a/versions/1/rows",
        None,
        False,
    ),
    ("GET", "/api/registry/datasets/{name}/versions/{ref}/card"): (
        "/api/registry/datasets/dataset-a/versions/1/card",
        None,
        False,
    ),
    ("GET", "/api/experiments/{name}"): ("/api/experiments/experiment-a", None, False),
    ("PATCH", "/api/experiments/{name}"): ("/api/experiments/experiment-a", KEEP, False),
    ("POST", "/api/experiments/{name}/stop"): ("/api/experiments/experiment-a/stop", None, False),
    ("POST", "/api/experiments/{name}/promote"): ("/api/experiments/experiment-a/promote", {"variant": "b"}, False),
    ("GET", "/api/evaluation/runs/{run_id}"): (f"/api/evaluation/runs/{RUN_ID}", None, False),
    ("PATCH", "/api/evaluation/runs/{run_id}"): (f"/api/evaluation/runs/{RUN_ID}", KEEP, False),
    ("GET", "/api/evaluation/runs/{run_id}/results"): (f"/api/evaluation/runs/{RUN_ID}/results", None, False),
    ("GET", "/api/evaluation/runs/{run_id}/gate"): (
        f"/api/evaluation/runs/{RUN_ID}/gate?gate=error_rate<=1",
        None,
        False,
    ),
    ("GET", "/api/evaluation/compare"): (f"/api/evaluation/compare?a={RUN_ID}&b={RUN_ID}", None, False),
    ("PUT", "/api/evaluation/online/rules/{name}"): (
        "/api/evaluation/online/rules/rule-a",
        {"sample_rate": 0.5, "evaluators": ["exact"]},
        True,
    ),
    ("PATCH", "/api/evaluation/online/rules/{name}"): (
        "/api/evaluation/online/rules/rule-a",
        KEEP,
        False,
    ),
    ("DELETE", "/api/evaluation/online/rules/{name}"): ("/api/evaluation/online/rules/rule-a", None, False),
}

#: List routes → the name team A's resource has in them.
LIST_ROUTES = {
    "/api/registry/prompts": "prompt-a",
    "/api/registry/models": "model-a",
    "/api/registry/datasets": "dataset-a",
    "/api/experiments": "experiment-a",
    "/api/evaluation/runs": RUN_ID,
    "/api/evaluation/online/rules": "rule-a",
}

#: The routes of team A's resources that make them shared (as an admin) and private again.
SHARE_PATHS = [
    "/api/registry/prompts/prompt-a",
    "/api/registry/models/model-a",
    "/api/registry/datasets/dataset-a",
    "/api/experiments/experiment-a",
    f"/api/evaluation/runs/{RUN_ID}",
    "/api/evaluation/online/rules/rule-a",
]

#: Path prefixes of owned resources: a route under one of them with a path parameter needs a row above.
OWNED_PREFIXES = ("/api/registry/prompts/", "/api/registry/models/", "/api/registry/datasets/", "/api/experiments/")
OWNED_RUN_PREFIXES = ("/api/evaluation/runs/", "/api/evaluation/online/rules/")


class Owned:
    """A gateway with team A's prompt, model, dataset, experiment, eval run and online rule."""

    def __init__(self, app: FastAPI, http: httpx.AsyncClient, keys: dict[str, str], gateway: Any) -> None:
        self.app = app
        self.http = http
        self.keys = keys
        self.gateway = gateway
        self.visibility = "team"

    async def share(self, visibility: str) -> None:
        self.visibility = visibility
        for path in SHARE_PATHS:
            await self.ok("PATCH", path, "admin", {"visibility": visibility})

    async def call(self, method: str, path: str, caller: str, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[caller]}"}
        if body is KEEP:
            body = {"visibility": self.visibility}
        request = self.http.request(method, path, headers=headers, json=body)
        try:
            return await asyncio.wait_for(request, PER_REQUEST_SECONDS)
        except TimeoutError:
            raise AssertionError(f"{method} {path} as {caller}: no answer in {PER_REQUEST_SECONDS}s") from None

    async def ok(self, method: str, path: str, caller: str = "owning team", body: Any = None) -> None:
        response = await self.call(method, path, caller, body)
        assert response.is_success, (method, path, caller, response.text)

    async def restore(self) -> None:
        """Put back what a write (a removed label, a stopped experiment, a deleted rule) changed."""
        for kind, pointer in (("prompts", "labels"), ("models", "aliases")):
            await self.ok("PUT", f"/api/registry/{kind}/{kind[:-1]}-a/{pointer}/staging", body={"version": 2})
        await self.ok("PUT", "/api/evaluation/online/rules/rule-a", body={"sample_rate": 0.5, "evaluators": ["exact"]})
        await self.ok("PATCH", "/api/evaluation/online/rules/rule-a", "admin", {"visibility": self.visibility})
        db = self.gateway.db
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE eval_experiments SET status = 'running', stopped_at = NULL, outcome = NULL"))
        await self.gateway.evaluation.experiments.refresh()

    async def seed(self) -> None:
        await self.ok("POST", "/api/registry/prompts", body={"name": "prompt-a"})
        # route-model-a follows model-a: until it is registered the route is the default team's, so
        # an admin registers it for team A.
        await self.ok("POST", "/api/registry/models", "admin", {"name": "model-a", "team": OWNER_TEAM})
        for kind, spec in (("prompts", PROMPT_SPEC), ("models", MODEL_SPEC)):
            for _ in range(2):
                await self.ok("POST", f"/api/registry/{kind}/{kind[:-1]}-a/versions", body=spec)
            pointer = "labels" if kind == "prompts" else "aliases"
            for version in (1, 2):
                await self.ok("PUT", f"/api/registry/{kind}/{kind[:-1]}-a/{pointer}/staging", body={"version": version})
        await self.ok(
            "POST", "/api/registry/datasets/dataset-a/versions", body={"rows": [{"input": "1+1", "expected": "2"}]}
        )
        card = DataCard(
            dataset="dataset-a@1",
            base_model="demo",
            chat_template="<|user|>{content}<|end|><|assistant|>{answer}<|end|>",
            options=PrepOptions(),
            rows_in=1,
            train=1,
            validation=0,
            created_at=time.time(),
        )
        DatasetStore(self.gateway.db).set_card("dataset-a", 1, card)
        SQLTraceStore(self.gateway.db).insert(
            [
                TraceRecord(
                    route="route-a",
                    team_id=OWNER_TEAM,
                    request_body={"messages": [{"role": "user", "content": "hi"}]},
                    response_body={"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]},
                )
            ]
        )
        experiment = {
            "name": "experiment-a",
            "route": "route-a",
            "variants": [{"name": "control", "weight": 1}, {"name": "b", "weight": 1, "route": "route-a2"}],
        }
        await self.ok("POST", "/api/experiments", body=experiment)
        run = RunRecord.new(
            spec={"evaluators": ["exact"]},
            dataset="dataset-a",
            dataset_version=1,
            dataset_digest="d",
            row_count=0,
            status="succeeded",
            summary={"error_rate": 0.0, "scores": {}},
            team_id=OWNER_TEAM,
        )
        run.id = RUN_ID
        RunStore(self.gateway.db).create(run)
        words = {"rows": [{"input": {"word": w}, "expected": w} for w in ("one", "two", "three")]}
        await self.ok("POST", "/api/registry/datasets/dataset-words/versions", body=words)
        OptimizationStore(self.gateway.db).create(
            OptimizationRecord(
                id=OPTIMIZATION_ID,
                prompt="prompt-a",
                from_version=1,
                dataset="dataset-words@1",
                status="succeeded",
                request={},
                progress=OptimizationProgress(),
                created_at=time.time(),
            )
        )
        await self.restore()


@pytest.fixture
async def owned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Owned]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    routes = [
        {"name": "route-a", "team": OWNER_TEAM, "targets": [NOWHERE]},
        {"name": "route-a2", "team": OWNER_TEAM, "targets": [NOWHERE]},
        {"name": "route-model-a", "targets": ["registry:model-a@staging"]},
        {"name": "route-admins", "targets": [NOWHERE]},
        {"name": "route-default", "targets": ["registry:default-bot@staging"]},
    ]
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "routes": routes,
            "tracing": PATIENT,
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    store = IdentityStore(gateway.db)
    for team in (OWNER_TEAM, OTHER_TEAM):
        store.create_team(team, team_id=team)
    keys = {"admin": ADMIN_KEY, "teamless developer": store.create_key("teamless", "developer")[1]}
    for caller, (role, team) in OWNERSHIP_CALLERS.items():
        if caller != "admin":
            keys[caller] = store.create_key(caller, role, team_id=team)[1]
    gateway.policy.keys.load()
    async with in_process_client(app) as http:
        state = Owned(app, http, keys, gateway)
        await state.seed()
        yield state


def ownership_wanted(kind: str, caller: str, shared: bool, creates: bool) -> str:
    """What a caller should get: 'ok', '403', '404' or '404/409' (a name another team holds)."""
    role, team = OWNERSHIP_CALLERS[caller]
    if caller == "admin":
        return "ok"
    if kind == "read":
        if role == "inference":
            return "403"
        return "ok" if team == OWNER_TEAM or shared else "404"
    if role != "developer":
        return "403"
    if team == OWNER_TEAM:
        return "ok"
    if shared:
        return "403"
    return "409" if creates else "404"


def outcome(response: httpx.Response) -> str:
    status = response.status_code
    if status >= 500:
        return f"{status} (a server error)"
    if status in (401, 403, 404, 409) and not (status == 409 and response.json()["error"]["code"] != "name_taken"):
        return str(status)
    return "ok"


def owned_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    out = []
    for method, path, route in endpoints(app):
        if "{" in path and path.startswith(OWNED_PREFIXES + OWNED_RUN_PREFIXES):
            out.append((method, path, route))
    return out


async def test_every_route_of_an_owned_resource_is_in_the_ownership_matrix(owned: Owned) -> None:
    missing = [f"{m} {p}" for m, p, _ in owned_routes(owned.app) if (m, p) not in RESOURCE_ROUTES]
    assert not missing, f"add these routes to RESOURCE_ROUTES (and decide who owns what they touch): {missing}"


@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared"])
async def test_each_caller_gets_what_ownership_allows(owned: Owned, shared: bool) -> None:
    if shared:
        await owned.share("shared")
    routes = {(m, p): route for m, p, route in endpoints(owned.app)}
    problems, checked = [], 0
    for (method, template), (path, body, creates) in RESOURCE_ROUTES.items():
        role = declared(routes[(method, template)])
        assert role in ("viewer", "developer"), (method, template, role)
        kind = "read" if role == "viewer" else "write"
        wanted = {caller: ownership_wanted(kind, caller, shared, creates) for caller in OWNERSHIP_CALLERS}
        # Callers refused first: a write that succeeds may change what the next caller finds.
        for caller in sorted(OWNERSHIP_CALLERS, key=lambda c: wanted[c] == "ok"):
            if wanted[caller] == "ok" and kind == "write":
                await owned.restore()
            response = await owned.call(method, path, caller, body)
            checked += 1
            if outcome(response) != wanted[caller]:
                problems.append(
                    f"{method} {path} ({kind}) as {caller}: {response.status_code} {response.text[:200]}, wanted {wanted[caller]}"
                )
        if kind == "write":
            await owned.restore()
    for path, name in LIST_ROUTES.items():
        for caller in OWNERSHIP_CALLERS:
            role, team = OWNERSHIP_CALLERS[caller]
            response = await owned.call("GET", path, caller)
            if role == "inference":
                ok = response.status_code == 403
            else:
                listed = [item.get("name") or item.get("id") for item in response.json()["data"]]
                ok = (name in listed) == (caller == "admin" or team == OWNER_TEAM or shared)
            if not ok:
                problems.append(f"GET {path} as {caller} lists {response.text[:300]}")
    assert checked == len(RESOURCE_ROUTES) * len(OWNERSHIP_CALLERS)
    assert not problems, "\n".join(problems)


# -- may this principal change where route R's traffic goes? --------------------------------------

#: Caller → route → whether it may move the route's traffic. route-a names team A in the config;
#: route-model-a follows team A's model; route-admins is a configured route naming no team;
#: route-default follows a model of the default team (keys without a team).
TRAFFIC: dict[str, dict[str, bool]] = {
    "owning team": {"route-a": True, "route-model-a": True, "route-admins": False, "route-default": False},
    "another team": {"route-a": False, "route-model-a": False, "route-admins": False, "route-default": False},
    "admin": {"route-a": True, "route-model-a": True, "route-admins": True, "route-default": True},
    "teamless developer": {"route-a": False, "route-model-a": False, "route-admins": False, "route-default": True},
    "viewer": {"route-a": False, "route-model-a": False, "route-admins": False, "route-default": False},
    "inference": {"route-a": False, "route-model-a": False, "route-admins": False, "route-default": False},
}


async def test_who_may_change_where_a_routes_traffic_goes(owned: Owned) -> None:
    await owned.ok("POST", "/api/registry/models/default-bot/versions", "admin", MODEL_SPEC)
    await owned.ok("POST", "/api/experiments/experiment-a/stop", "admin")
    problems = []
    for caller, routes in TRAFFIC.items():
        for route, allowed in routes.items():
            name = f"x-{route}"
            spec = {"name": name, "route": route, "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
            response = await owned.call("POST", "/api/experiments", caller, spec)
            if (response.status_code == 201) != allowed or (not allowed and response.status_code != 403):
                problems.append(f"experiment on {route} as {caller}: {response.status_code} {response.text[:200]}")
            if response.status_code == 201:
                await owned.ok("POST", f"/api/experiments/{name}/stop", "admin")
                with owned.gateway.db.engine.begin() as conn:
                    conn.execute(text("DELETE FROM eval_experiments WHERE name = :n"), {"n": name})
            followed = {"route-model-a": "model-a", "route-default": "default-bot"}.get(route)
            if followed is None:
                continue
            moved = await owned.call("PUT", f"/api/registry/models/{followed}/aliases/staging", caller, {"version": 1})
            if moved.is_success != allowed or (not allowed and moved.status_code not in (403, 404)):
                problems.append(
                    f"moving {followed}@staging ({route}) as {caller}: {moved.status_code} {moved.text[:200]}"
                )
    assert not problems, "\n".join(problems)


# -- the web console (/console) ----------------------------------------------------------------------------
# Console routes authenticate with a session cookie instead of a bearer key, and declare their role with
# ``Depends(console_user(role))``; these tests hold them to the same matrix: no session → sign-in page (or
# 401), too weak a role → 403, and a change without the session's CSRF token → 403.

#: Console routes anyone may open: the sign-in form, the redirect to it, sign-out's target.
CONSOLE_PUBLIC = {("GET", "/console"), ("GET", "/console/"), ("GET", "/console/login"), ("POST", "/console/login")}
CONSOLE_CALLERS: dict[str, Role] = {"viewer": "viewer", "developer": "developer", "admin": "admin"}


def console_declared(route: Any) -> Role | None:
    from lmdeck.console.auth import declared_console_role

    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    stack, roles = [dependant], []
    while stack:
        current = stack.pop()
        for sub in current.dependencies:
            if sub.call is not None and (role := declared_console_role(sub.call)) is not None:
                roles.append(role)
            stack.append(sub)
    order: list[Role] = ["admin", "developer", "viewer", "inference"]
    return min(roles, key=order.index) if roles else None


class ConsoleMatrix:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.app = app
        self.http = http
        self.keys = keys
        self.csrf: dict[str, str] = {}
        self.cookies: dict[str, str] = {}

    async def sign_in(self, caller: str) -> None:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        done = await self.http.post("/console/login", data={"csrf_token": token.group(1), "api_key": self.keys[caller]})
        assert done.status_code == 303, (caller, done.status_code, done.text[:300])
        self.cookies[caller] = self.http.cookies["lmdeck_console"]
        page = await self.http.get("/console/overview")
        meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert meta is not None
        self.csrf[caller] = meta.group(1)

    async def call(
        self, method: str, path: str, caller: str | None, *, csrf: bool = True, htmx: bool = False
    ) -> httpx.Response:
        headers = {"hx-request": "true"} if htmx else {}
        if caller is not None and csrf and method not in ("GET", "HEAD"):
            headers["x-csrf-token"] = self.csrf[caller]
        cookies = {"lmdeck_console": self.cookies[caller]} if caller is not None else {}
        self.http.cookies.clear()
        request = self.http.build_request(method, concrete(path), headers=headers, cookies=cookies, data={})
        return await asyncio.wait_for(self.http.send(request), PER_REQUEST_SECONDS * 4)


@pytest.fixture
async def console_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ConsoleMatrix]:
    from lmdeck.console import install_console

    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}, "tracing": PATIENT}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    store = IdentityStore(gateway.db)
    keys = {"admin": ADMIN_KEY}
    for role in ("viewer", "developer"):
        keys[role] = store.create_key(f"console matrix {role}", role)[1]
    async with in_process_client(app, timeout=60.0) as http:
        await gateway.policy.keys.reload()
        matrix = ConsoleMatrix(app, http, keys)
        for caller in CONSOLE_CALLERS:
            await matrix.sign_in(caller)
        yield matrix


def console_endpoints(app: FastAPI) -> list[tuple[str, str, Any]]:
    return [(m, p, r) for m, p, r in endpoints(app) if p.startswith("/console") and not p.startswith("/console/static")]


async def test_every_console_route_declares_its_role(console_matrix: ConsoleMatrix) -> None:
    routes = console_endpoints(console_matrix.app)
    assert ("GET", "/console/overview") in {(m, p) for m, p, _ in routes}
    missing = [f"{m} {p}" for m, p, r in routes if (m, p) not in CONSOLE_PUBLIC and console_declared(r) is None]
    assert not missing, f"console routes without Depends(console_user('<role>')): {missing}"


async def test_console_routes_refuse_callers_without_a_session_a_role_or_a_csrf_token(
    console_matrix: ConsoleMatrix,
) -> None:
    problems = []
    checked = 0
    for method, path, route in console_endpoints(console_matrix.app):
        role = console_declared(route)
        if role is None:
            continue
        anonymous = await console_matrix.call(method, path, None)
        if method == "GET":
            if anonymous.status_code != 303 or not anonymous.headers["location"].startswith("/console/login"):
                problems.append(f"{method} {path} without a session: {anonymous.status_code}, wanted 303 to sign-in")
            htmx = await console_matrix.call(method, path, None, htmx=True)
            if htmx.status_code != 401 or not htmx.headers.get("hx-redirect", "").startswith("/console/login"):
                problems.append(f"{method} {path} (htmx) without a session: {htmx.status_code}, wanted 401")
        elif anonymous.status_code != 401:
            problems.append(f"{method} {path} without a session: {anonymous.status_code}, wanted 401")
        for caller, held in CONSOLE_CALLERS.items():
            if path == "/console/logout":
                continue  # signing out ends the session the other checks use (tests/console/test_signin.py)
            response = await console_matrix.call(method, path, caller)
            checked += 1
            if Principal(key_id="k", role=held).at_least(role):
                if response.status_code in (401, 403) or response.status_code >= 500:
                    problems.append(f"{method} {path} (needs {role}) as {caller}: {response.status_code}")
            elif response.status_code != 403:
                problems.append(f"{method} {path} (needs {role}) as {caller}: {response.status_code}, wanted 403")
            if method != "GET":
                forged = await console_matrix.call(method, path, caller, csrf=False)
                if forged.status_code != 403:
                    problems.append(f"{method} {path} as {caller} without CSRF token: {forged.status_code}, wanted 403")
    assert checked > 0
    assert not problems, "\n".join(problems)


async def test_a_viewer_cannot_forge_a_console_sign_out_of_another_session(console_matrix: ConsoleMatrix) -> None:
    # The admin's CSRF token does not work with the viewer's session (tokens belong to a session).
    request = console_matrix.http.build_request(
        "POST",
        "/console/logout",
        headers={"x-csrf-token": console_matrix.csrf["admin"]},
        cookies={"lmdeck_console": console_matrix.cookies["viewer"]},
    )
    console_matrix.http.cookies.clear()
    assert (await console_matrix.http.send(request)).status_code == 403
