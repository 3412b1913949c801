"""Signing in to the console, in process: key → session cookie, CSRF on changes, expiry, sign-out."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.console.sessions import COOKIE, SessionStore
from lmdeck.console.signin import safe_next
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-Jf83Hs02Lq7Xc5Vb1Nm4Kp9Rt6Yw2Ez"


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    store = IdentityStore(gateway.db)
    keys = {"admin": ADMIN_KEY}
    for role in ("inference", "viewer"):
        keys[role] = store.create_key(f"console {role}", role)[1]
    async with in_process_client(app) as http:
        await gateway.policy.keys.reload()
        yield http, keys


async def sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await http.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await http.post(
        "/console/login", data={"csrf_token": token.group(1), "api_key": key, "next": "/console/overview"}
    )


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found is not None
    return found.group(1)


async def test_signing_in_sets_an_http_only_strict_cookie_and_never_the_key(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, keys = client
    response = await sign_in(http, keys["admin"])
    assert response.status_code == 303 and response.headers["location"] == "/console/overview"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert keys["admin"] not in cookie
    page = await http.get("/console/overview")
    assert page.status_code == 200 and "Overview" in page.text
    assert keys["admin"] not in page.text
    assert "content-security-policy" in page.headers


async def test_a_wrong_key_or_an_inference_key_or_a_forged_form_does_not_sign_in(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, keys = client
    assert (await sign_in(http, "sk-lmdeck-not-a-key")).status_code == 401
    assert (await sign_in(http, keys["inference"])).status_code == 403
    forged = await http.post("/console/login", data={"api_key": keys["admin"]})
    assert forged.status_code == 403
    assert (await http.get("/console/overview")).status_code == 303


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, keys = client
    await sign_in(http, keys["viewer"])
    page = await http.get("/console/overview")
    assert (await http.post("/console/logout")).status_code == 403
    out = await http.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    again = await http.get("/console/overview")
    assert again.status_code == 303 and again.headers["location"].startswith("/console/login")


async def test_a_revoked_key_ends_its_console_sessions(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, keys = client
    await sign_in(http, keys["admin"])
    listed = await http.get("/api/keys", headers={"authorization": f"Bearer {keys['admin']}"})
    viewer_id = next(k["id"] for k in listed.json()["data"] if k["name"] == "console viewer")
    http.cookies.clear()
    await sign_in(http, keys["viewer"])
    assert (await http.get("/console/overview")).status_code == 200
    revoked = await http.post(f"/api/keys/{viewer_id}/revoke", headers={"authorization": f"Bearer {keys['admin']}"})
    assert revoked.status_code == 200
    assert (await http.get("/console/overview")).status_code == 303


async def test_a_rotated_key_ends_the_sessions_of_its_old_secret(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, keys = client
    admin = {"authorization": f"Bearer {keys['admin']}"}
    listed = await http.get("/api/keys", headers=admin)
    viewer_id = next(k["id"] for k in listed.json()["data"] if k["name"] == "console viewer")
    await sign_in(http, keys["viewer"])
    assert (await http.get("/console/overview")).status_code == 200
    rotated = await http.post(f"/api/keys/{viewer_id}/rotate", headers=admin, json={"grace_seconds": 0})
    assert rotated.status_code == 200
    assert (await http.get("/console/overview")).status_code == 303
    http.cookies.clear()
    await sign_in(http, rotated.json()["key"])
    assert (await http.get("/console/overview")).status_code == 200


def test_sessions_expire_after_their_ttl() -> None:
    now = [1000.0]
    store = SessionStore(ttl_s=60, clock=lambda: now[0])
    session = store.open("key_1", "hash_1")
    assert store.get(session.id) == session
    now[0] += 61
    assert store.get(session.id) is None and len(store) == 0


@pytest.mark.parametrize(
    "target", ["https://evil.test/", "//evil.test", "/console/login", "/api/keys", "/console/\\evil", None]
)
def test_sign_in_only_returns_to_console_pages(target: str | None) -> None:
    assert safe_next(target) == "/console/overview"
    assert safe_next("/console/traces?route=demo") == "/console/traces?route=demo"


def test_expiry_is_a_setting_of_eight_hours_by_default() -> None:
    assert Settings().console.session_ttl_s == 8 * 3600
    assert time.time() > 0


async def test_an_admin_creates_a_key_shown_once_and_it_works(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, keys = client
    await sign_in(http, keys["admin"])
    page = await http.get("/console/keys")
    assert page.status_code == 200
    created = await http.post(
        "/console/keys", data={"csrf_token": csrf_of(page.text), "name": "from the console", "role": "viewer"}
    )
    assert created.status_code == 201
    found = re.search(r'<p class="secret" id="new-key">([^<]+)</p>', created.text)
    assert found is not None
    new_key = found.group(1).strip()
    listed = await http.get("/api/keys", headers={"authorization": f"Bearer {new_key}"})
    assert listed.status_code == 403  # a viewer key: authenticated, but /api/keys is for admins
    assert new_key not in (await http.get("/console/keys")).text


async def test_a_viewer_sees_no_key_form_and_cannot_post_one(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, keys = client
    await sign_in(http, keys["viewer"])
    page = await http.get("/console/overview")
    assert (await http.get("/console/keys")).status_code == 403
    refused = await http.post("/console/keys", data={"csrf_token": csrf_of(page.text), "name": "nope"})
    assert refused.status_code == 403
    assert 'href="/console/keys"' not in page.text


async def test_signed_out_requests_return_to_the_page_not_to_a_fragment_or_a_post(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, _ = client
    page = await http.get("/console/traces?route=demo")
    assert (
        page.status_code == 303 and page.headers["location"] == "/console/login?next=%2Fconsole%2Ftraces%3Froute%3Ddemo"
    )
    base = str(http.base_url).rstrip("/")
    poll = await http.get(
        "/console/overview/panel?window=hour",
        headers={"hx-request": "true", "hx-current-url": f"{base}/console/overview?window=day"},
    )
    assert poll.status_code == 401
    assert poll.headers["hx-redirect"] == "/console/login?next=%2Fconsole%2Foverview%3Fwindow%3Dday"
    run = await http.post(
        "/console/registry/prompts/greet/playground/run", headers={"referer": f"{base}/console/registry/prompts/greet"}
    )
    assert run.headers["hx-redirect"] == "/console/login?next=%2Fconsole%2Fregistry%2Fprompts%2Fgreet"
    elsewhere = await http.post("/console/keys", headers={"referer": "https://evil.test/console/keys"})
    assert elsewhere.headers["hx-redirect"] == "/console/login?next=%2Fconsole%2Foverview"  # home
    back = await http.get("/console/login?next=%2Fconsole%2Foverview%3Fwindow%3Dday")
    assert 'value="/console/overview?window=day"' in back.text
