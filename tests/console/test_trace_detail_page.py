"""The trace detail page against a real ``lmdeck serve`` (bundled demo model): a request that is retried,
falls back and passes an input guardrail, inside an application's OTLP span, scored online and given
feedback through the API, shows its attempts, verdicts, waterfall, span tree, scores and feedback; the
feedback and annotation-queue forms work for the trace's team (CSRF-checked), refuse bad input with a
4xx and another team with a 404; and in a real browser, feedback added through the form is listed."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lmdeck.testing.browser import CONSOLE_CONFIG, sign_in, wait_for
from lmdeck.testing.servers import GatewayProcess, gateway_process

#: The demo model behind one route, and a route whose only target refuses connections (retried once,
#: then the request falls back to the first); both check their input for mail addresses, and every
#: trace is scored online.
CONFIG: dict[str, Any] = {
    **CONSOLE_CONFIG,
    "guardrails": {
        "definitions": {
            "mails": {"type": "regex", "options": {"patterns": [r"\S+@\S+"], "entity": "EMAIL_ADDRESS"}},
        }
    },
    "routes": [
        {
            "name": "guarded",
            "targets": [{"provider": "local", "model": "demo"}],
            "guardrails": {"input": [{"use": "mails", "action": "mask"}]},
        },
        {
            "name": "flaky",
            "targets": [{"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "max_retries": 1}],
            "fallbacks": ["guarded"],
            "guardrails": {"input": [{"use": "mails", "action": "mask"}]},
        },
    ],
    "evaluation": {"online_rules": [{"name": "json-check", "sample_rate": "100%", "evaluators": ["json_valid"]}]},
}


@dataclass
class Deck:
    gw: GatewayProcess
    keys: dict[str, str]  # "inference", "viewer" (team A), "other" (a viewer of team B)
    queue: str  # team A's annotation queue
    other_queue: str  # team B's
    trace_id: str  # the stored trace of the request
    w3c_trace_id: str  # the application's trace it was made in
    session: str


def api(gw: GatewayProcess, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers=gw.headers(key), timeout=120, **kwargs)


def poll(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """``check()`` until it returns something truthy: traces, spans and scores are stored off the request path."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not appear after {timeout}s"
        time.sleep(0.1)
    return found


def _team(gw: GatewayProcess, roles: dict[str, str]) -> tuple[str, dict[str, str]]:
    team = api(gw, "POST", "/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert team.status_code == 201, team.text
    keys = {}
    for name, role in roles.items():
        body = {"name": f"{name}-{uuid.uuid4().hex[:6]}", "role": role, "team_id": team.json()["id"]}
        created = api(gw, "POST", "/api/keys", json=body)
        assert created.status_code == 201, created.text
        keys[name] = created.json()["key"]
    return team.json()["id"], keys


def _queue(gw: GatewayProcess, team_id: str) -> str:
    name = f"review-{uuid.uuid4().hex[:6]}"
    made = api(gw, "PUT", f"/api/annotation-queues/{name}", json={"name": name, "team": team_id})
    assert made.status_code in (200, 201), made.text
    return name


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    with gateway_process(CONFIG, data_dir=tmp_path_factory.mktemp("trace-detail"), timeout=180.0) as gw:
        team_a, keys = _team(gw, {"inference": "inference", "viewer": "viewer"})
        team_b, other = _team(gw, {"other": "viewer"})
        keys.update(other)
        queue, other_queue = _queue(gw, team_a), _queue(gw, team_b)

        # The application's span, sent over OTLP, with the LLM call made inside it.
        exporter = OTLPSpanExporter(
            endpoint=f"{gw.url}/v1/traces", headers={"authorization": f"Bearer {keys['inference']}"}, timeout=15
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        session, request_id = f"chat-{uuid.uuid4().hex[:8]}", f"req-{uuid.uuid4().hex}"
        with provider.get_tracer("support-agent").start_as_current_span("agent.run") as root:
            headers = {"x-lmdeck-session-id": session, "x-request-id": request_id}
            inject(headers)
            body = {"model": "flaky", "messages": [{"role": "user", "content": "write to ada@example.com"}]}
            reply = httpx.post(
                f"{gw.base_url}/chat/completions",
                json={**body, "max_tokens": 4},
                headers={**gw.headers(keys["inference"]), **headers},
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
        provider.shutdown()
        trace_id = gw.trace(request_id, timeout=120)["id"]
        yield Deck(gw, keys, queue, other_queue, trace_id, f"{root.get_span_context().trace_id:032x}", session)


@dataclass
class Console:
    http: httpx.Client
    csrf: str


def console(deck: Deck, role: str) -> Iterator[Console]:
    with httpx.Client(base_url=deck.gw.url, timeout=120) as http:
        form = http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        done = http.post("/console/login", data={"csrf_token": token.group(1), "api_key": deck.keys[role]})
        assert done.status_code == 303, done.text
        page = http.get("/console/traces")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf is not None
        yield Console(http, csrf.group(1))


@pytest.fixture
def viewer(deck: Deck) -> Iterator[Console]:
    yield from console(deck, "viewer")


@pytest.fixture
def outsider(deck: Deck) -> Iterator[Console]:
    yield from console(deck, "other")


def section(html: str, section_id: str) -> str:
    found = re.search(rf'<section class="[^"]*" id="{section_id}">(.*?)</section>', html, re.S)
    assert found is not None, f"no section {section_id!r}"
    return found.group(1)


def feedback_of(deck: Deck) -> list[dict[str, Any]]:
    listed = api(deck.gw, "GET", "/api/feedback", deck.keys["viewer"], params={"trace_id": deck.trace_id})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def test_the_page_shows_attempts_verdicts_waterfall_spans_scores_and_feedback(deck: Deck, viewer: Console) -> None:
    gw = deck.gw
    posted = api(
        gw,
        "POST",
        "/api/feedback",
        deck.keys["inference"],
        json={"trace_id": deck.trace_id, "value": "up", "comment": "said by the api"},
    )
    assert posted.status_code == 201, posted.text
    score = poll(
        lambda: api(
            gw, "GET", "/api/evaluation/online/scores", deck.keys["viewer"], params={"trace_id": deck.trace_id}
        ).json()["data"],
        "the online score",
    )[0]
    tree = poll(
        lambda: (
            (r := api(gw, "GET", f"/api/traces/{deck.w3c_trace_id}/tree", deck.keys["viewer"])).status_code == 200
            and len(r.json()["spans"]) == 2
            and r.json()
        ),
        "the application's span",
    )
    record = api(gw, "GET", f"/api/traces/{deck.trace_id}").json()

    page = viewer.http.get(f"/console/traces/{deck.trace_id}")
    assert page.status_code == 200, page.text

    attempts = re.findall(r'<tr class="attempt">(.*?)</tr>', section(page.text, "timing"), re.S)
    failed = record["metadata"]["upstream_errors"]
    assert len(failed) == 2 and len(attempts) == 3
    assert all("failed" in row and failed[0]["target"] in row for row in attempts[:2])
    assert "answered" in attempts[2] and record["target"] in attempts[2]
    assert record["retries"] >= 1 and record["fallback_used"] is True

    assert record["metadata"].get("guardrails"), record["metadata"]
    phases = re.findall(r'<tr class="phase"><th scope="row">([^<]+)</th>', page.text)
    assert phases[0] == "input guardrail mails" and "upstream" in phases and phases[-1] == "total"

    verdict = re.findall(r'<tr class="verdict">(.*?)</tr>', section(page.text, "guardrails"), re.S)
    assert len(verdict) == 1 and "mails" in verdict[0] and "mask" in verdict[0] and "input" in verdict[0]

    spans = section(page.text, "spans")
    assert deck.w3c_trace_id in spans and f"session_id={deck.session}" in spans
    names = re.findall(r'<tr class="span-row" data-depth="(\d)"><th scope="row"[^>]*>([^<]+)', spans)
    assert names[0] == ("0", "agent.run") and names[1][0] == "1"
    assert tree["spans"][0]["name"] == "agent.run"

    scores = section(page.text, "scores")
    assert "json-check" in scores and score["evaluator"] in scores

    assert "said by the api" in section(page.text, "feedback")
    # A viewer may do what the API lets it: give feedback and send to a queue of its team's (only).
    assert 'id="feedback-form"' in page.text and 'id="queue-form"' in page.text
    assert f'value="{deck.queue}"' in page.text and deck.other_queue not in page.text


def test_the_forms_add_feedback_and_queue_the_trace(deck: Deck, viewer: Console) -> None:
    path = f"/console/traces/{deck.trace_id}"
    added = viewer.http.post(
        f"{path}/feedback", data={"csrf_token": viewer.csrf, "value": "down", "comment": "from the form"}
    )
    assert added.status_code == 303 and added.headers["location"].startswith(path)
    stored = [f for f in feedback_of(deck) if f["comment"] == "from the form"]
    assert len(stored) == 1 and stored[0]["value"] == 0.0 and stored[0]["source"] == "user"
    scored = viewer.http.post(f"{path}/feedback", data={"csrf_token": viewer.csrf, "score": "0.75"})
    assert scored.status_code == 303
    assert any(f["value"] == 0.75 for f in feedback_of(deck))
    page = viewer.http.get(path)
    assert "from the form" in section(page.text, "feedback")

    sent = viewer.http.post(f"{path}/queue", data={"csrf_token": viewer.csrf, "queue": deck.queue, "reason": "odd"})
    assert sent.status_code == 303
    items = api(deck.gw, "GET", f"/api/annotation-queues/{deck.queue}/items", deck.keys["viewer"]).json()["data"]
    assert [i["trace_id"] for i in items] == [deck.trace_id]
    queued = section(viewer.http.get(path).text, "annotation")
    assert deck.queue in queued and '<span class="queued-status">pending</span>' in queued
    again = viewer.http.post(f"{path}/queue", data={"csrf_token": viewer.csrf, "queue": deck.queue})
    assert again.status_code == 303  # already queued: the API answers it as already_queued, not an error


@pytest.mark.parametrize(
    "form",
    [
        {"score": "not a number"},
        {"value": "up", "score": "0.5"},
        {"value": "sideways"},
        {},
        {"comment": "x" * 4001},
    ],
)
def test_bad_feedback_is_a_400_and_stores_nothing(deck: Deck, viewer: Console, form: dict[str, str]) -> None:
    before = len(feedback_of(deck))
    refused = viewer.http.post(f"/console/traces/{deck.trace_id}/feedback", data={"csrf_token": viewer.csrf, **form})
    assert refused.status_code == 400, refused.text
    assert 'id="feedback-error"' in refused.text
    assert len(feedback_of(deck)) == before


def test_a_bad_or_unknown_queue_is_refused(deck: Deck, viewer: Console) -> None:
    path = f"/console/traces/{deck.trace_id}/queue"
    assert viewer.http.post(path, data={"csrf_token": viewer.csrf, "queue": ""}).status_code == 400
    assert viewer.http.post(path, data={"csrf_token": viewer.csrf, "queue": "../x"}).status_code == 400
    long = viewer.http.post(path, data={"csrf_token": viewer.csrf, "queue": deck.queue, "reason": "r" * 1001})
    assert long.status_code == 400
    # Team B's queue is not the viewer's to read: a 404, as from the API.
    other = viewer.http.post(path, data={"csrf_token": viewer.csrf, "queue": deck.other_queue})
    assert other.status_code == 404 and 'id="queue-error"' in other.text


def test_a_forged_post_is_403_and_another_team_gets_404(deck: Deck, viewer: Console, outsider: Console) -> None:
    path = f"/console/traces/{deck.trace_id}"
    before = len(feedback_of(deck))
    forged = viewer.http.post(f"{path}/feedback", data={"value": "up"})
    assert forged.status_code == 403
    assert viewer.http.post(f"{path}/queue", data={"csrf_token": "forged", "queue": deck.queue}).status_code == 403
    assert outsider.http.get(path).status_code == 404
    for action, form in (("feedback", {"value": "up"}), ("queue", {"queue": deck.other_queue})):
        refused = outsider.http.post(f"{path}/{action}", data={"csrf_token": outsider.csrf, **form})
        assert refused.status_code == 404, (action, refused.text)
    assert len(feedback_of(deck)) == before
    queued = api(deck.gw, "GET", f"/api/annotation-queues/{deck.other_queue}/items", deck.keys["other"])
    assert queued.json()["data"] == []
    assert outsider.http.get(f"/console/traces/{'x' * 300}").status_code == 404


def test_feedback_added_in_a_browser_is_listed(browser: Any, deck: Deck) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, deck.gw.url, deck.keys["viewer"])
    browser.get(f"{deck.gw.url}/console/traces/{deck.trace_id}")
    form = wait_for(browser, lambda d: d.find_element(By.ID, "feedback-form"))
    Select(form.find_element(By.ID, "fb-value")).select_by_value("up")
    comment = f"browser {uuid.uuid4().hex[:8]}"
    form.find_element(By.ID, "fb-comment").send_keys(comment)
    form.find_element(By.ID, "add-feedback").click()
    row = wait_for(
        browser,
        lambda d: [
            r for r in d.find_elements(By.CSS_SELECTOR, "#feedback-list tr.feedback-entry") if comment in r.text
        ],
    )
    assert "1.0" in row[0].text
    assert any(f["comment"] == comment and f["value"] == 1.0 for f in feedback_of(deck))
