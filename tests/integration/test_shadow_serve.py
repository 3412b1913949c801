"""Acceptance: a release's shadow stage on a real ``lmdeck serve`` in front of the FAKE upstream, driven
through the official ``openai`` SDK.

1. The shadow never changes or delays the user's answer. The same requests (plain and streamed) are
   sent with the shadow off and on; the answers are the same (but for the upstream's per-call ``id``
   and ``created``), the user's upstream call is the same, and, judged by what each request observed
   in the fake upstream's request log: each candidate call reached the upstream only after the
   upstream had finished the user's call, and every user had the whole answer while the candidate
   call mirroring it (2 s of upstream latency) had not finished.
2. The shadow never exceeds its budget: candidate calls counted at the upstream equal the mirrors the
   gateway counted, their cost stays within ``budget_micros``, the rest is counted as
   ``budget_exhausted``; the judged pairs pass the gate and the release enters its canary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from lmdeck.testing.servers import (
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
    start_gateway,
)

#: US$1000 per 1M tokens in and out: a call of 8 tokens costs 8000 micro-dollars.
PRICE = {"input": "1000", "output": "1000"}
#: An evaluator judge: 1 for an answer of exactly three words (what the candidate's max_tokens leaves).
THREE_WORDS = 'regex:{"pattern": "^\\\\S+ \\\\S+ \\\\S+$", "full": true}'
CANDIDATE_LATENCY_MS = 2000.0


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    upstream = start_fake_upstream(log_dir=tmp_path_factory.mktemp("fake"), latency_ms=50)
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
def gw(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        **TEST_SETTINGS,
        "routes": [
            {"name": "support", "targets": [openai_target(fake, "base-model")]},
            {"name": "support-next", "targets": [openai_target(fake, "cand-model")]},
            {"name": "help", "targets": [openai_target(fake, "base-model")]},
            {"name": "help-next", "targets": [openai_target(fake, "cand-model")]},
        ],
        "policy": {"pricing": {"base-model": PRICE, "cand-model": PRICE}},
        # The controller acts only when the test asks it to (POST /api/releases/analyze).
        "release_controller": {"analysis_tick_s": None},
    }
    gateway = start_gateway(config, data_dir=tmp_path_factory.mktemp("gw"))
    try:
        yield gateway
    finally:
        gateway.stop()


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> dict[str, Any]:
    response = httpx.request(method, f"{gw.url}{path}", json=body, headers=gw.headers(), timeout=30)
    assert response.status_code < 300, response.text
    return dict(response.json())


def start_release(gw: GatewayProcess, spec: dict[str, Any]) -> None:
    admin(gw, "POST", "/api/releases", spec)
    admin(gw, "POST", f"/api/releases/{spec['name']}/start")
    shadow_until(gw, spec["name"], lambda s: s["active"], "the shadow to begin")


def shadow_until(gw: GatewayProcess, release: str, done: Any, what: str, timeout: float = 90.0) -> dict[str, Any]:
    """The release's shadow status once ``done(status)`` holds (the worker runs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        status = admin(gw, "GET", f"/api/releases/{release}/shadow")
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}: {status}")
        time.sleep(0.1)


def ask(client: OpenAI, route: str, i: int, stream: bool) -> tuple[Any, float]:
    """One user request; its answer without the upstream's per-call id and time, and when it was whole."""
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"shadow question number {i}"}]
    if not stream:
        reply = client.chat.completions.create(model=route, messages=messages)
        done = time.time()
        return reply.model_dump(exclude={"id", "created"}), done
    chunks = [
        c.model_dump(exclude={"id", "created"})
        for c in client.chat.completions.create(model=route, messages=messages, stream=True)
    ]
    return chunks, time.time()


def calls(fake: FakeUpstreamProcess, model: str, i: int) -> list[dict[str, Any]]:
    text = f"shadow question number {i}"
    return [
        r
        for r in fake.requests()
        if r["path"] == "/v1/chat/completions"
        and r["body"]["model"] == model
        and r["body"]["messages"][-1]["content"] == text
    ]


def test_the_shadow_never_changes_or_delays_the_users_answer(gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)
    plan = [(i, i % 2 == 1) for i in range(4)]  # plain and streamed in turn
    off = {i: ask(client, "support", i, stream)[0] for i, stream in plan}
    user_calls_off = {i: calls(fake, "base-model", i)[-1]["body"] for i, _ in plan}

    fake.configure(model_latency_ms={"cand-model": CANDIDATE_LATENCY_MS})
    start_release(
        gw,
        {
            "name": "shadow-slow",
            "route": "support",
            "candidate": {"route": "support-next"},
            "shadow": {
                "sample": 1.0,
                "queue": 100,
                "budget_micros": 10_000_000,
                "min_pairs": 100,
                "judges": [THREE_WORDS],
            },
        },
    )
    done_at: dict[int, float] = {}
    for i, stream in plan:
        answer, done_at[i] = ask(client, "support", i, stream)
        assert answer == off[i], f"request {i}: the shadow changed the user's answer"
        # When the user has the whole answer, the candidate call mirroring it has not finished.
        assert all("finished_at" not in c for c in calls(fake, "cand-model", i))

    status = shadow_until(gw, "shadow-slow", lambda s: s["counters"]["judged"] == len(plan), "every pair judged")
    assert status["counters"]["mirrored"] == len(plan) and status["counters"]["dropped"] == 0
    for i, _ in plan:
        user = calls(fake, "base-model", i)[-1]
        (candidate,) = calls(fake, "cand-model", i)
        assert user["body"] == user_calls_off[i], "the shadow changed what the user's request sent upstream"
        # The candidate call reached the upstream after the user's call there was done ...
        assert candidate["received_at"] >= user["finished_at"]
        # ... and finished after the user had the whole answer.
        assert done_at[i] < candidate["finished_at"]
        assert candidate["body"]["model"] == "cand-model" and not candidate["body"].get("stream")
        assert candidate["body"]["messages"] == user["body"]["messages"]
    fake.configure(model_latency_ms={})
    admin(gw, "POST", "/api/releases/shadow-slow/abort", {"reason": "test over"})
    shadow_until(gw, "shadow-slow", lambda s: not s["active"], "the shadow to end")


def test_the_shadow_stays_within_its_budget_and_its_verdict_opens_the_canary(
    gw: GatewayProcess, fake: FakeUpstreamProcess
) -> None:
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)
    budget = 75_000  # about ten candidate calls of 7 tokens (4 in, 3 out) at 1000 micro-dollars a token
    start_release(
        gw,
        {
            "name": "shadow-budget",
            "route": "help",
            "candidate": {"route": "help-next", "params": {"max_tokens": 3}},
            "shadow": {"sample": 1.0, "queue": 100, "budget_micros": budget, "min_pairs": 8, "judges": [THREE_WORDS]},
        },
    )
    sent = 14
    for i in range(sent):
        ask(client, "help", 100 + i, stream=False)
        # One at a time, so that whether a mirror fits the budget does not depend on the queue.
        shadow_until(gw, "shadow-budget", lambda s, n=i + 1: _settled(s) == n, f"mirror {i} settled")
    status = admin(gw, "GET", "/api/releases/shadow-budget/shadow?pairs=100")
    counters = status["counters"]
    candidate_calls = sum(len(calls(fake, "cand-model", 100 + i)) for i in range(sent))
    assert candidate_calls == counters["mirrored"] == counters["judged"]
    assert counters["budget_exhausted"] == sent - counters["mirrored"] > 0
    # Each candidate call costs 7000 (4 tokens in, 3 out), each user call 8000 (4 in, 4 out); a call is
    # made while the spend plus the dearest call seen so far (8000 first) fits in 75000: ten calls.
    assert (counters["mirrored"], counters["spent_micros"]) == (10, 70_000)
    assert counters["spent_micros"] == sum(p["cost_micros"] for p in status["pairs"]) <= budget
    dearest = max(p["cost_micros"] for p in status["pairs"])
    assert budget - counters["spent_micros"] < 2 * dearest  # it stopped at the budget, not well before
    assert status["budget_left_micros"] == budget - counters["spent_micros"]
    metrics = httpx.get(f"{gw.url}/metrics", timeout=30).text
    assert (
        f'lmdeck_shadow_budget_exhausted_total{{release="shadow-budget"}} {float(counters["budget_exhausted"])}'
        in metrics
    )
    assert f'lmdeck_shadow_mirrored_total{{release="shadow-budget"}} {float(counters["mirrored"])}' in metrics

    verdict = status["verdict"]
    assert verdict["wins"] == counters["judged"] and verdict["decision"] == "pass", verdict
    assert all(p["outcome"] == "win" and len(p["candidate"].split()) == 3 for p in status["pairs"])
    admin(gw, "POST", "/api/releases/analyze")
    release = admin(gw, "GET", "/api/releases/shadow-budget")
    assert release["state"] == "canary", release
    admin(gw, "POST", "/api/releases/shadow-budget/abort", {"reason": "test over"})


def _settled(status: dict[str, Any]) -> int:
    counters = status["counters"]
    return int(counters["judged"] + counters["budget_exhausted"] + counters["failed"] + counters["dropped"])
