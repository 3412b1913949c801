"""``/metrics`` of a real ``lmdeck serve``: lint-clean for ``promtool`` and bounded whatever clients send;
requests refused before routing are counted there and recorded in the traces API.

The upstream is the FAKE upstream process. One gateway serves the whole module.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

FEEDBACK_NAMES = ["thumbs", "rating"]
#: Trace records of anonymous refusals per client address and minute (tracing.refused_records_per_minute).
REFUSED_PER_MINUTE = 5


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [{"name": "chat", "targets": [openai_target(fake_upstream_server, max_retries=0)]}]
    return gateway(
        routes,
        evaluation={"feedback_names": FEEDBACK_NAMES},
        max_body_bytes=4096,
        tracing={"refused_records_per_minute": REFUSED_PER_MINUTE},
    )


@pytest.fixture(scope="module")
def http(gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers=gw.headers(), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def request_id(gw: GatewayProcess) -> str:
    """The ``x-request-id`` of one answered chat request (feedback is attached to it)."""
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello metrics"}]
    )
    return raw.headers["x-request-id"]


def scrape(http: httpx.Client) -> dict[str, int]:
    """Series per metric family name, from a parsed scrape."""
    response = http.get("/metrics")
    assert response.status_code == 200
    return {family.name: len(family.samples) for family in text_string_to_metric_families(response.text)}


def test_random_feedback_names_do_not_grow_the_series(http: httpx.Client, request_id: str) -> None:
    def post(name: str) -> None:
        answer = http.post("/api/feedback", json={"trace_id": request_id, "name": name, "value": 1})
        assert answer.status_code == 201, answer.text

    post("thumbs")
    for _ in range(10):
        post(uuid.uuid4().hex)
    before = scrape(http)
    for _ in range(1000):
        post(f"{uuid.uuid4().hex}-{uuid.uuid4().hex[:6]}")
    after = scrape(http)
    assert after["lmdeck_feedback_value"] == before["lmdeck_feedback_value"]
    assert sum(after.values()) == sum(before.values())
    text = http.get("/metrics").text
    assert 'name="thumbs"' in text and 'name="other"' in text
    # thumbs and other, each a histogram: buckets, _sum and _count.
    assert after["lmdeck_feedback_value"] == 2 * (11 + 2)


def test_promtool_finds_nothing_to_lint(http: httpx.Client, gw: GatewayProcess, request_id: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/test-services.sh installs Debian's prometheus package)")
    # Traffic of each kind the series come from: a chat answered (request_id), feedback, an error.
    assert http.post("/api/feedback", json={"trace_id": request_id, "name": "rating", "value": 0.5}).status_code == 201
    missing = http.post(
        "/v1/chat/completions", json={"model": "no-such-route", "messages": [{"role": "user", "content": "x"}]}
    )
    assert missing.status_code == 404
    refused = http.post("/v1/chat/completions", headers={"authorization": "Bearer sk-wrong"}, json={})
    assert refused.status_code == 401
    text = http.get("/metrics").text
    assert "lmdeck_requests_total" in text
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    lint = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0 and not lint.strip(), lint


def new_key(http: httpx.Client, **rules: object) -> tuple[str, str, str]:
    """A new team key with ``rules``: (secret, key id, team id)."""
    team = http.post("/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert team.status_code in (200, 201), team.text
    key = http.post("/api/keys", json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"], **rules})
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"]), str(key.json()["id"]), str(team.json()["id"])


def chat_body(model: str = "chat") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "refuse me"}]}


def samples(http: httpx.Client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = http.get("/metrics").text
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_each_refusal_is_counted_and_recorded(http: httpx.Client, gw: GatewayProcess) -> None:
    limited, limited_id, limited_team = new_key(http, rpm=1)
    narrow, narrow_id, narrow_team = new_key(http, allowed_models=["elsewhere"])
    url = "/v1/chat/completions"
    sent: dict[str, httpx.Response] = {}

    def send(tag: str, secret: str, **kwargs: object) -> None:
        rid = f"refused-{tag}-{uuid.uuid4().hex}"
        headers = {"authorization": f"Bearer {secret}", "x-request-id": rid}
        sent[rid] = http.post(url, headers=headers, **kwargs)  # type: ignore[arg-type]

    send("401", "sk-not-a-key", json=chat_body())
    send("403", narrow, json=chat_body())
    rid400 = f"refused-400-{uuid.uuid4().hex}"
    sent[rid400] = http.post(
        url, headers={"x-request-id": rid400, "content-type": "application/json"}, content=b"{not json"
    )
    send("413", gw.admin_key, json=chat_body() | {"messages": [{"role": "user", "content": "x" * 8000}]})
    send("200", limited, json=chat_body())
    send("429", limited, json=chat_body())
    statuses = {rid: response.status_code for rid, response in sent.items()}
    assert sorted(statuses.values()) == [200, 400, 401, 403, 413, 429], statuses

    for rid, status in statuses.items():
        trace = gw.trace(rid)
        assert trace["status_code"] == status
        if status == 401:
            assert trace["key_id"] is None and trace["request_body"] is None
        if status == 403:
            assert (trace["key_id"], trace["team_id"]) == (narrow_id, narrow_team)
        if status == 429:
            assert (trace["key_id"], trace["team_id"]) == (limited_id, limited_team)

    refused = samples(http, "lmdeck_requests_refused_total")
    reasons = {dict(labels)["status"]: dict(labels)["reason"] for labels in refused}
    assert reasons["401"] == "invalid_api_key"
    assert reasons["403"] == "model_not_allowed"
    assert {"400", "413"} <= set(reasons)
    # The rate limiter runs inside the pipeline: its 429 is a request the pipeline recorded.
    served = samples(http, "lmdeck_requests_total")
    assert any(dict(labels)["status"] == "429" for labels in served)


def test_a_flood_of_bad_keys_is_counted_but_sampled_into_the_store(http: httpx.Client, gw: GatewayProcess) -> None:
    def refused_401() -> float:
        return sum(
            v for labels, v in samples(http, "lmdeck_requests_refused_total").items() if ("status", "401") in labels
        )

    before = refused_401()
    marker = uuid.uuid4().hex
    for i in range(500):
        answer = http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer sk-flood-{i}", "x-request-id": f"flood-{marker}-{i}"},
            json=chat_body(),
        )
        assert answer.status_code == 401
    assert refused_401() - before == 500
    listing = http.get("/api/traces", params={"status": "401", "limit": 500})
    assert listing.status_code == 200, listing.text
    flood = [t for t in listing.json()["data"] if str(t.get("client_request_id", "")).startswith(f"flood-{marker}")]
    # At most REFUSED_PER_MINUTE records a minute from this address; far fewer than the 500 sent.
    assert 1 <= len(flood) < 50
