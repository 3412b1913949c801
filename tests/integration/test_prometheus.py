"""``/metrics`` of a real ``lmdeck serve``: lint-clean for ``promtool`` and bounded whatever clients send.

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


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [{"name": "chat", "targets": [openai_target(fake_upstream_server, max_retries=0)]}]
    return gateway(routes, evaluation={"feedback_names": FEEDBACK_NAMES}, max_body_bytes=4096)


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
