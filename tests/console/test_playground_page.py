"""The prompt playground against a real ``lmdeck serve`` (bundled demo model), over HTTP: one labelled
input per variable, the rendered preview, a run through the pipeline as the signed-in key (traced with
the prompt's name and version, on that key), the 4xx answers to bad input, and a key's model rules."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lmdeck.testing.servers import GatewayProcess

PROMPT = "pg-greet"
V1 = {"text": "Say hello to {{ name }}.", "variables": {"name": "string"}}
V2 = {
    "messages": [
        {"role": "system", "content": "Answer in at most {{ words }} words."},
        {"role": "user", "content": "Say hello to {{ name }}{% if loud %}, loudly{% endif %}."},
    ],
    "variables": {
        "name": "string",
        "words": {"type": "integer", "default": 5},
        "loud": {"type": "boolean", "required": False},
    },
    "parameters": {"max_tokens": 16},
}
PLAYGROUND = f"/console/registry/prompts/{PROMPT}/playground"
HTMX = {"hx-request": "true"}


class Console:
    """One signed-in console session on the gateway (its cookie, its CSRF token)."""

    def __init__(self, gw: GatewayProcess, key: str) -> None:
        self.http = httpx.Client(base_url=gw.url, timeout=120)
        form = self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = self.http.post(
            "/console/login", data={"csrf_token": token.group(1), "api_key": key, "next": "/console/registry"}
        )
        assert signed.status_code == 303, signed.text
        page = self.http.get("/console/registry")
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None
        self.csrf = found.group(1)

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        fields = {"csrf_token": self.csrf, **data} if csrf else data
        return self.http.post(path, data=fields, headers=HTMX)


@pytest.fixture(scope="module")
def gw(console_gateway: GatewayProcess) -> GatewayProcess:
    for spec in (V1, V2):
        made = httpx.post(
            f"{console_gateway.url}/api/registry/prompts/{PROMPT}/versions",
            json=spec,
            headers=console_gateway.headers(),
            timeout=60,
        )
        assert made.status_code == 201, made.text
    return console_gateway


def new_key(gw: GatewayProcess, name: str, role: str, **rules: Any) -> tuple[str, str]:
    """(id, secret) of a key made through /api/keys."""
    made = httpx.post(
        f"{gw.url}/api/keys", json={"name": name, "role": role, **rules}, headers=gw.headers(), timeout=60
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Iterator[Console]:
    console = Console(gw, gw.admin_key)
    yield console
    console.http.close()


def stored_trace(gw: GatewayProcess, trace_id: str) -> dict[str, Any]:
    """The stored trace ``trace_id`` (traces land asynchronously: asked again until it is there)."""
    deadline = time.monotonic() + 60
    while True:
        found = httpx.get(f"{gw.url}/api/traces/{trace_id}", headers=gw.headers(), timeout=60)
        if found.status_code == 200:
            trace: dict[str, Any] = found.json()
            return trace
        assert time.monotonic() < deadline, f"trace {trace_id} not stored: {found.status_code} {found.text}"
        time.sleep(0.2)


def trace_link(page: str) -> str:
    found = re.search(r'id="playground-trace" href="/console/traces/([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def test_one_labelled_input_per_variable_and_the_routes_the_key_may_call(gw: GatewayProcess, admin: Console) -> None:
    page = admin.http.get(PLAYGROUND, params={"version": "2"})
    assert page.status_code == 200, page.text
    inputs = dict(re.findall(r'id="(pg-var-\d+)" name="var\.(\w+)"', page.text))
    assert sorted(inputs.values()) == ["loud", "name", "words"]
    for input_id in inputs:
        assert f'<label for="{input_id}">' in page.text
    routes = re.findall(r'<option value="([^"]+)"', page.text.split('id="pg-route"', 1)[1].split("</select>", 1)[0])
    assert "demo" in routes
    assert 'id="playground-submit"' in page.text and 'name="csrf_token"' in page.text
    newest = admin.http.get(PLAYGROUND)
    assert newest.status_code == 200 and 'name="version" value="2"' in newest.text
    entry = admin.http.get(f"/console/registry/prompts/{PROMPT}")
    assert f'href="{PLAYGROUND}?version=1"' in entry.text and 'id="playground-open-form"' in entry.text


def test_the_preview_shows_the_rendered_messages(gw: GatewayProcess, admin: Console) -> None:
    shown = admin.post(f"{PLAYGROUND}/preview", {"version": "2", "var.name": "Ada", "var.loud": "true"})
    assert shown.status_code == 200, shown.text
    assert "<html" not in shown.text  # htmx gets the fragment only
    assert "Answer in at most 5 words." in shown.text and "Say hello to Ada, loudly." in shown.text
    plain = admin.post(f"{PLAYGROUND}/preview", {"version": "1", "var.name": "Bo"})
    assert plain.status_code == 200 and "Say hello to Bo." in plain.text
    missing = admin.post(f"{PLAYGROUND}/preview", {"version": "2", "var.words": "3"})
    assert missing.status_code == 400 and "missing variable" in missing.text and "name" in missing.text


def test_a_run_goes_through_the_pipeline_as_the_signed_in_key(gw: GatewayProcess) -> None:
    team = httpx.post(f"{gw.url}/api/teams", json={"name": "playground-team"}, headers=gw.headers(), timeout=60)
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    key_id, secret = new_key(gw, "playground developer", "developer", team_id=team_id)
    # The team's own prompt; the admin's (no team, not shared) is as good as missing to it, as on the API.
    made = httpx.post(
        f"{gw.url}/api/registry/prompts/pg-team/versions", json=V2, headers=gw.headers(secret), timeout=60
    )
    assert made.status_code == 201, made.text
    console = Console(gw, secret)
    assert console.http.get(PLAYGROUND).status_code == 404
    others = console.post(f"{PLAYGROUND}/run", {"version": "1", "var.name": "Ada", "route": "demo"})
    assert others.status_code == 404
    ran = console.post(
        "/console/registry/prompts/pg-team/playground/run",
        {"version": "1", "var.name": "Ada", "route": "demo", "max_tokens": "8", "temperature": "0"},
    )
    assert ran.status_code == 200, ran.text
    answer = re.search(r'id="playground-answer">(.*?)</pre>', ran.text, re.S)
    assert answer is not None and answer.group(1).strip()
    trace_id = trace_link(ran.text)
    trace = stored_trace(gw, trace_id)
    assert (trace["prompt_name"], trace["prompt_version"]) == ("pg-team", 1)
    assert (trace["key_id"], trace["team_id"]) == (key_id, team_id)
    assert trace["route"] == "demo" and trace["status_code"] == 200
    assert trace["request_body"]["max_tokens"] == 8 and trace["request_body"]["temperature"] == 0
    assert trace["output_tokens"] > 0 and f">{trace['input_tokens']} / {trace['output_tokens']}<" in ran.text
    assert "eval" not in trace["tags"]
    detail = console.http.get(f"/console/traces/{trace_id}")
    assert detail.status_code == 200 and "Say hello to Ada." in detail.text
    console.http.close()


def test_bad_input_is_a_4xx_that_says_what_is_wrong(gw: GatewayProcess, admin: Console) -> None:
    run = f"{PLAYGROUND}/run"
    good = {"version": "1", "var.name": "Ada", "route": "demo"}
    cases: list[tuple[dict[str, str], int, str]] = [
        ({**good, "route": "no-such-route"}, 404, "no-such-route"),
        ({**good, "route": ""}, 400, "choose the route"),
        ({**good, "max_tokens": "many"}, 400, "max_tokens"),
        ({**good, "max_tokens": "0"}, 400, "max_tokens"),
        ({**good, "temperature": "hot"}, 400, "temperature"),
        ({**good, "temperature": "9"}, 400, "temperature"),
        ({k: v for k, v in good.items() if k != "var.name"}, 400, "missing variable: name"),
        ({**good, "version": "2", "var.words": "three"}, 400, "variable words"),
        ({**good, "version": "2", "var.loud": "maybe"}, 400, "variable loud"),
        ({**good, "version": "99"}, 404, "99"),
        ({**good, "version": "first"}, 400, "version"),
    ]
    for data, status, says in cases:
        answer = admin.post(run, data)
        assert (answer.status_code, says in answer.text) == (status, True), (data, answer.status_code, answer.text)
    for path in (f"{PLAYGROUND}?version=99", f"{PLAYGROUND}?version=-1", "/console/registry/prompts/nope/playground"):
        page = admin.http.get(path)
        assert 400 <= page.status_code < 500, (path, page.status_code)
    tokenless = admin.post(run, good, csrf=False)
    assert tokenless.status_code == 403


def test_a_viewer_runs_as_a_viewer_key_calls_the_api_and_a_key_s_model_rules_hold(gw: GatewayProcess) -> None:
    # Any key may call /v1/chat/completions, a viewer's included: the playground lets it run too.
    viewer_id, viewer_secret = new_key(gw, "playground viewer", "viewer")
    api = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers=gw.headers(viewer_secret),
        timeout=120,
    )
    assert api.status_code == 200, api.text
    viewer = Console(gw, viewer_secret)
    page = viewer.http.get(PLAYGROUND)
    assert 'id="playground-submit"' in page.text
    ran = viewer.post(f"{PLAYGROUND}/run", {"version": "1", "var.name": "Cy", "route": "demo", "max_tokens": "4"})
    assert ran.status_code == 200, ran.text
    assert stored_trace(gw, trace_link(ran.text))["key_id"] == viewer_id
    viewer.http.close()

    # A key allowed only another route neither sees nor reaches `demo`, as on the API.
    _, narrow_secret = new_key(gw, "playground narrow", "developer", allowed_models=["elsewhere"])
    narrow = Console(gw, narrow_secret)
    page = narrow.http.get(PLAYGROUND)
    assert page.status_code == 200 and 'id="pg-route"' not in page.text and "may call no chat route" in page.text
    forged = narrow.post(f"{PLAYGROUND}/run", {"version": "1", "var.name": "Cy", "route": "demo"})
    assert forged.status_code == 403 and "may not use the model" in forged.text
    narrow.http.close()
