"""Every console page, in process: no query string gets a 5xx, and the rendered HTML is accessible
(every input labelled, every button and image named)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_PAGES_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-pages-Qz7Tn2Wb5Lr8Pk1Hx4Mv6Jc9Ds3"

HOSTILE = [
    "window=%00",
    "window=" + "x" * 5000,
    "route=%27%3B--&status=%3Cscript%3E&limit=-1&cursor=%FF%FE",
    "limit=99999999999999999999999&since=NaN&until=1e999",
    "since=-1&until=abc&page=%E2%80%AE",
    "q=%25%25%25&tag=&team_id=%00&key_id=../../etc/passwd",
    "next=//evil.test&window=day&window=week",
    "a[]=1&a[b]=2&__proto__=x",
]


#: Pages under a name or id (none exists here: each answers 404 or 400, never a 5xx, whatever the query).
PAGES_WITH_NAMES = [
    "/console/registry/prompts/greet",
    "/console/registry/models/bot",
    "/console/registry/prompts/greet/diff",
    "/console/registry/prompts/greet/playground",
    "/console/registry/datasets/faq",
    "/console/evaluation/runs/run_x",
    "/console/evaluation/experiments/exp",
    "/console/finetuning/jobs/ftjob_x",
    "/console/finetuning/flywheel/fw_x",
    "/console/releases/rel",
    "/console/releases/rel/panel",
    "/console/operations/queues/review",
    "/console/traces/tr_x",
]


@pytest.fixture
async def signed_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}}
    )
    app = create_app(settings, gateway=build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False))
    install_console(app, settings)
    async with in_process_client(app, timeout=60.0) as http:
        form = await http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        done = await http.post("/console/login", data={"csrf_token": token.group(1), "api_key": ADMIN_KEY})
        assert done.status_code == 303
        yield app, http


def flat_routes(app: FastAPI) -> list[Any]:
    """Every route of the app, routers included (newer FastAPI includes routers lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def console_get_paths(app: FastAPI) -> list[str]:
    return sorted(
        {
            route.path
            for route in flat_routes(app)
            if str(getattr(route, "path", "")).startswith("/console")
            and "GET" in (getattr(route, "methods", None) or ())
            and "{" not in route.path
        }
    )


async def test_no_query_string_gets_a_server_error(signed_in: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, http = signed_in
    paths = console_get_paths(app) + PAGES_WITH_NAMES
    assert "/console/overview" in paths and "/console/overview/panel" in paths
    failures = []
    for path in paths:
        for query in HOSTILE:
            for headers in ({}, {"hx-request": "true"}):
                response = await http.get(f"{path}?{query}", headers=headers)
                if response.status_code >= 500:
                    failures.append(f"{path}?{query[:60]} -> {response.status_code}")
    assert not failures, failures


class Accessibility(HTMLParser):
    """Collects inputs without a label and buttons/images without an accessible name."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.inputs: list[dict[str, str | None]] = []
        self.unnamed: list[str] = []
        self._button: dict[str, str | None] | None = None
        self._button_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.inputs.append(a)
        if tag == "img" and not a.get("alt") and not a.get("aria-label"):
            self.unnamed.append(f"img {a}")
        if tag == "button":
            self._button, self._button_text = a, ""

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            if not self._button_text.strip() and not self._button.get("aria-label"):
                self.unnamed.append(f"button {self._button}")
            self._button = None

    def problems(self) -> list[str]:
        out = list(self.unnamed)
        for field in self.inputs:
            if field.get("aria-label"):
                continue
            if not field.get("id") or field["id"] not in self.labels:
                out.append(f"input without a label: {field}")
        return out


def accessibility_problems(html: str) -> list[str]:
    parser = Accessibility()
    parser.feed(html)
    return parser.problems()


async def test_every_page_labels_its_inputs_and_names_its_buttons(signed_in: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, http = signed_in
    found = {}
    for path in console_get_paths(app):
        response = await http.get(path)
        if response.headers.get("content-type", "").startswith("text/html"):
            found[path] = accessibility_problems(response.text)
    http.cookies.clear()
    found["/console/login"] = accessibility_problems((await http.get("/console/login")).text)
    assert all(not problems for problems in found.values()), found


def test_the_checker_catches_an_unlabelled_input_and_an_unnamed_button() -> None:
    html = '<input id="a" name="a"><button type="button"></button><label for="b">B</label><input id="b">'
    assert len(accessibility_problems(html)) == 2


async def test_the_prompt_pages_label_their_inputs(signed_in: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """A prompt's page and its playground (one input per variable, of every input kind) once a prompt exists."""
    _, http = signed_in
    spec = {
        "text": "{{ who }} {{ n }} {{ x }} {{ loud }} {{ tags }}",
        "variables": {
            "who": {"type": "string", "description": "who to greet"},
            "n": "integer",
            "x": {"type": "number", "default": 0.5},
            "loud": {"type": "boolean", "required": False},
            "tags": "list",
        },
    }
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    made = await http.post("/api/registry/prompts/mixed/versions", json=spec, headers=auth)
    assert made.status_code == 201, made.text
    found = {}
    for path in ("/console/registry/prompts/mixed", "/console/registry/prompts/mixed/playground"):
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text)
        found[path] = accessibility_problems(response.text)
    assert all(not problems for problems in found.values()), found


async def test_a_wrong_trace_filter_is_a_400_naming_it(signed_in: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, http = signed_in
    wrong = [
        ("prompt_version=two", "prompt_version"),
        ("prompt_version=0", "prompt_version"),
        ("prompt_version=9223372036854775808", "prompt_version"),
        ("q=a%00b", "q"),
        ("route=a%00b", "route"),
    ]
    for query, name in wrong:
        page = await http.get(f"/console/traces?{query}")
        assert page.status_code == 400 and f"{name}:" in page.text, (query, page.status_code)
    page = await http.get("/console/traces?prompt=greet&prompt_version=2&release=warmer")
    assert page.status_code == 200 and 'value="warmer"' in page.text and "No trace matches." in page.text


async def test_a_missing_thing_is_headed_not_found(signed_in: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, http = signed_in
    page = await http.get("/console/traces/tr_nope")
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text and "<title>Not found" in page.text


async def test_errors_on_console_paths_are_pages_and_elsewhere_json(
    signed_in: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, http = signed_in
    for path, status, heading in (
        ("/console/evaluation/compare", 400, "Not accepted"),
        ("/console/registry/prompts/greet/diff?from=one&to=2", 400, "Not accepted"),
        ("/console/evaluation/runs/" + "x" * 300, 404, "Not found"),
    ):
        page = await http.get(path)
        assert page.status_code == status and page.headers["content-type"].startswith("text/html"), path
        assert f"<h1>{heading}</h1>" in page.text and 'role="alert"' in page.text, path
        assert page.headers["content-security-policy"], path
    assert (await http.get("/console/static/nowhere.js")).headers["content-type"].startswith("application/json")
    assert (await http.get("/api/keys/key_nope")).headers["content-type"].startswith("application/json")
