"""The route guard: who calls is checked before what they sent, and what no field may hold is refused.

Each test drives the fully built app in process; the regressions named in the docstrings
were 500s (or a 400 after the body had been read) before the guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from lmdeck.app.assembly import build_gateway
from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.factory import create_app
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.protocol.limits import INT64_MAX, INT64_MIN
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_BOUNDARY_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-boundary-Rk5Wz8Nq2Tx7Lm4Hc9Vb1Jp6Gd3Fs0Y"


class Deck:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, viewer_key: str) -> None:
        self.app = app
        self.http = http
        self.viewer_key = viewer_key

    @property
    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def deck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deck]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "routes": [
                {"name": "chat", "targets": [{"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}]}
            ],
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    viewer_key = IdentityStore(gateway.db).create_key("boundary viewer", "viewer")[1]
    async with in_process_client(app) as http:
        yield Deck(app, http, viewer_key)


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    from fastapi.routing import iter_route_contexts

    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield route


async def test_every_api_route_is_guarded(deck: Deck) -> None:
    unguarded = [f"{sorted(r.methods)} {r.path}" for r in api_routes(deck.app) if not isinstance(r, GuardedRoute)]
    assert not unguarded, (
        f"API routes without the boundary checks: {unguarded}; "
        "declare their router with APIRouter(..., route_class=GuardedRoute) from lmdeck.app.boundary"
    )


def _integers(schema: Any, where: str, components: dict[str, Any], seen: frozenset[str]) -> Iterator[tuple[str, Any]]:
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            yield from _integers(components[name], where, components, seen | {name})
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _integers(sub, where, components, seen)
    for name, sub in (schema.get("properties") or {}).items():
        yield from _integers(sub, f"{where}.{name}", components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integers(schema[key], f"{where}[]", components, seen)


async def test_every_integer_a_request_may_carry_is_bounded(deck: Deck) -> None:
    """The OpenAPI document states 64-bit (or narrower) bounds for every integer a request carries."""
    document = deck.app.openapi()
    components = document.get("components", {}).get("schemas", {})
    unbounded = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            found = [
                (f"{where} ?{p['name']}", schema)
                for p in operation.get("parameters", [])
                for _, schema in _integers(p.get("schema", {}), "", components, frozenset())
            ]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found += list(_integers(body, f"{where} body", components, frozenset()))
            for name, schema in found:
                low = schema.get("minimum", schema.get("exclusiveMinimum"))
                high = schema.get("maximum", schema.get("exclusiveMaximum"))
                # The document writes bounds as floats: INT64_MAX reads as 2^63 there.
                if low is None or high is None or float(low) < INT64_MIN or float(high) > float(INT64_MAX):
                    unbounded.append(f"{name} (minimum {low}, maximum {high})")
    assert not unbounded, (
        "integers without 64-bit bounds (use the types and limits of lmdeck.protocol.limits): " + ", ".join(unbounded)
    )


async def test_routes_that_read_raw_json_declare_their_body(deck: Deck) -> None:
    paths = deck.app.openapi()["paths"]
    for path, method in [
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/api/evaluation/online/rules/{name}", "put"),
    ]:
        schema = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schema.get("properties"), f"{method.upper()} {path} documents no body fields"
        assert "$defs" not in str(schema), "definitions must be inlined: '#/$defs/...' points nowhere in OpenAPI"


async def test_a_keyless_admin_call_gets_its_401_before_its_body_is_read(deck: Deck) -> None:
    """Regression: FastAPI parsed the JSON first, so a keyless broken body got a 400."""
    broken = {"content-type": "application/json"}
    response = await deck.http.post("/api/teams", content=b"{broken", headers=broken)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "missing_api_key"
    viewer = {**broken, "authorization": f"Bearer {deck.viewer_key}"}
    response = await deck.http.post("/api/teams", content=b"{broken", headers=viewer)
    assert response.status_code == 403, response.text
    response = await deck.http.post("/api/teams", content=b"{broken", headers={**broken, **deck.admin})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


BAD_JSON = [
    (_nested(300), "metadata.a.a.a"),
    ('{"a": 123456789012345678901234567890}', "metadata.a"),
    ('{"a": [1, 9223372036854775808]}', "metadata.a.1"),
    ('{"a": 1e400}', "metadata.a"),
]


@pytest.mark.parametrize(("metadata", "param"), BAD_JSON)
async def test_json_no_field_may_hold_is_refused_by_its_path_on_admin_routes(
    deck: Deck, metadata: str, param: str
) -> None:
    """Regression: a team's metadata nested 300 deep or holding a 2^100 integer was a 500 from the store."""
    raw = '{"name": "t", "metadata": ' + metadata + "}"
    response = await deck.http.post(
        "/api/teams", content=raw, headers={**deck.admin, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(param)
    teams = (await deck.http.get("/api/teams", headers=deck.admin)).json()["data"]
    assert all(t["name"] != "t" for t in teams)


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        (_nested(300), "metadata.a.a.a"),
        ('{"a": [1, 9223372036854775808]}', "metadata.a.1"),
        ('{"a": 1e400}', None),  # not a JSON number to the parser: refused before any field is looked at
        ('{"a": NaN}', None),
    ],
)
async def test_json_no_field_may_hold_is_refused_by_its_path_on_v1(
    deck: Deck, metadata: str, param: str | None
) -> None:
    """Regression: chat metadata nested 300 deep passed validation and failed as a 500 when traced.

    (The /v1 parser reads integers past 64 bits unsigned as floats, as JavaScript clients do; typed
    fields such as ``max_tokens`` refuse those.)
    """
    raw = '{"model": "chat", "messages": [{"role": "user", "content": "x"}], "metadata": ' + metadata + "}"
    response = await deck.http.post("/v1/chat/completions", content=raw, headers=deck.admin)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] is None if param is None else error["param"].startswith(param)
    too_many = '{"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e30}'
    response = await deck.http.post("/v1/chat/completions", content=too_many, headers=deck.admin)
    assert response.status_code == 400 and response.json()["error"]["param"] == "max_tokens"


async def test_nan_is_not_json(deck: Deck) -> None:
    raw = '{"scope": "team", "subject_id": "x", "period": "day", "limit_usd": NaN}'
    response = await deck.http.put(
        "/api/budgets", content=raw, headers={**deck.admin, "content-type": "application/json"}
    )
    assert response.status_code == 400 and "NaN" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/audit?after=١٢", "after"),  # Arabic-Indic digits: int() reads them, lmdeck does not
        ("/api/audit?after=99999999999999999999999", "after"),
        ("/api/audit?after=1_000", "after"),
        ("/api/spend?since=nan", "since"),
        ("/api/spend?since=inf", "since"),
        ("/api/spend?since=1e400", "since"),
        ("/api/traces?limit=١٢", "limit"),
        ("/api/traces?status=١٢", "status"),
        ("/api/traces?status=99999999999999999999", "status"),
        ("/api/registry/prompts/p/versions/99999999999999999999", "version"),
        ("/api/registry/prompts/p/diff?from=1&to=805790220455778372670193664", "to"),
    ],
)
async def test_numbers_in_query_and_path_are_ascii_finite_and_64_bit(deck: Deck, path: str, param: str) -> None:
    """Regression: ?after=99999999999999999999999 and ?to=8057...664 reached SQLite and were 500s."""
    response = await deck.http.get(path, headers=deck.admin)
    assert response.status_code == 400, (path, response.text)
    assert response.json()["error"]["param"] in (param, f"query.{param}", f"path.{param}")


@pytest.mark.parametrize("ref", ["²", "١٢", "99999999999999999999999", "-1"])
async def test_dataset_version_references_in_other_digits_are_not_numbers(deck: Deck, ref: str) -> None:
    """Regression: '²'.isdigit() is true and int('²') raises, so this was a 500."""
    response = await deck.http.get(f"/api/registry/datasets/d/versions/{ref}", headers=deck.admin)
    assert response.status_code in (400, 404), response.text
    assert "error" in response.json()


async def test_patch_refuses_null_where_clearing_means_nothing(deck: Deck) -> None:
    """Regression: PATCH {"role": null} reached the store's NOT NULL constraint: a 500."""
    created = (
        await deck.http.post("/api/keys", json={"name": "k", "role": "viewer", "rpm": 5}, headers=deck.admin)
    ).json()
    for field in ("role", "name"):
        response = await deck.http.patch(f"/api/keys/{created['id']}", json={field: None}, headers=deck.admin)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == field
    cleared = await deck.http.patch(f"/api/keys/{created['id']}", json={"rpm": None}, headers=deck.admin)
    assert cleared.status_code == 200 and cleared.json()["rpm"] is None and cleared.json()["role"] == "viewer"
    team = (await deck.http.post("/api/teams", json={"name": "tm"}, headers=deck.admin)).json()
    response = await deck.http.patch(f"/api/teams/{team['id']}", json={"metadata": None}, headers=deck.admin)
    assert response.status_code == 400 and response.json()["error"]["param"] == "metadata"


async def test_secrets_with_line_breaks_are_refused(deck: Deck) -> None:
    response = await deck.http.put("/api/secrets/upstream", json={"value": "sk-abc\n"}, headers=deck.admin)
    assert response.status_code == 400 and "line break" in response.json()["error"]["message"]


async def test_an_unexpected_error_is_a_500_that_names_the_request(deck: Deck) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    deck.app.router.add_api_route("/api/test-boom", boom, methods=["GET"])
    response = await deck.http.get("/api/test-boom")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert request_id in response.json()["error"]["message"] and "a bug" not in response.text
