"""The shadow stage in a gateway in process: mirrors start after the answer is sent, never change it,
stay within the queue and the budget, are traced apart from the user's traffic, and are judged."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.cli.releases import shadow_text
from lmdeck.delivery.shadow.dispatch import SHADOW_TAG, ShadowTarget
from lmdeck.delivery.shadow.runtime import ShadowRuntime
from lmdeck.delivery.store import ReleaseRecord
from lmdeck.protocol import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.delivery import ReleaseSpec
from lmdeck.protocol.evaluation import VariantSpec
from lmdeck.protocol.shadow import ShadowPair, ShadowSpec
from lmdeck.providers import ProviderRegistry
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-shadow-test-Hq3Zr8Lw1Nx5Kc9Vb2Mt7Pd4Fs6Jg0"
ADMIN_ENV = "LMDECK_SHADOW_TEST_ADMIN_KEY"


@dataclass
class Upstream:
    """What the FAKE provider saw (one shared log with the ASGI sends), and a gate for the candidate."""

    log: list[tuple[str, ...]] = field(default_factory=list)
    candidate_open: asyncio.Event = field(default_factory=asyncio.Event)
    candidate_entered: asyncio.Event = field(default_factory=asyncio.Event)


class RecordingFake:
    """A FAKE provider: ``base`` and ``cand`` answer about the question, ``judge`` prefers the candidate.

    Every call is appended to the shared log; ``cand`` waits for ``candidate_open`` before answering.
    """

    def __init__(self, target: TargetConfig, upstream: Upstream) -> None:
        self.model = target.model
        self.upstream = upstream

    def _answer(self, request: ChatCompletionRequest) -> str:
        text = request.messages[-1].text()
        if self.model == "judge":
            first = text.split("[Answer A]\n", 1)[1].split("\n[End of answer A]", 1)[0]
            return "VERDICT: A" if first.startswith("candidate") else "VERDICT: B"
        return f"{'baseline' if self.model == 'base' else 'candidate'} says: {text}"

    async def _enter(self, request: ChatCompletionRequest) -> None:
        self.upstream.log.append(("upstream", self.model, request.messages[-1].text()))
        if self.model == "cand":
            self.upstream.candidate_entered.set()
            await self.upstream.candidate_open.wait()

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        await self._enter(request)
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": 1700000000,
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self._answer(request)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        await self._enter(request)
        base = {"id": "chatcmpl-fake", "created": 1700000000, "model": self.model}
        for word in self._answer(request).split(" "):
            yield ChatCompletionChunk.model_validate(
                {**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]}
            )
        yield ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )

    async def aclose(self) -> None:
        return None


@dataclass
class Deck:
    app: FastAPI
    gateway: Gateway
    upstream: Upstream
    sink: MemoryTraceSink
    http: httpx.AsyncClient

    @property
    def shadow(self) -> ShadowRuntime:
        assert self.gateway.shadow is not None
        return self.gateway.shadow

    async def post(self, body: dict[str, Any], key: str = ADMIN_KEY) -> tuple[int, bytes]:
        """POST /v1/chat/completions straight through ASGI, each message the app sends put in the log."""
        raw = orjson.dumps(body)
        sent: list[bytes] = []
        status = 0
        requests = [{"type": "http.request", "body": raw, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if requests:
                return requests.pop()
            await asyncio.Event().wait()  # the client never leaves
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                sent.append(message.get("body", b""))
            self.upstream.log.append(("send", message["type"], str(message.get("more_body", False))))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 5000),
            "server": ("lmdeck.test", 80),
        }
        await self.app(scope, receive, send)
        return status, b"".join(sent)


def price(dollars_per_mtok: str) -> dict[str, str]:
    return {"input": dollars_per_mtok, "output": dollars_per_mtok}


@pytest.fixture
async def deck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deck]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    upstream = Upstream()
    providers = ProviderRegistry()
    providers.add("rec", lambda target, ctx: RecordingFake(target, upstream))
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "admin_key": {"$env": ADMIN_ENV},
            "default_routes": False,
            "routes": [
                {"name": "support", "targets": [{"provider": "rec", "model": "base"}]},
                {"name": "support-next", "targets": [{"provider": "rec", "model": "cand"}]},
                {"name": "judge", "targets": [{"provider": "rec", "model": "judge"}]},
            ],
            # 15 tokens a call at US$1000 per 1M tokens: 15000 micro-dollars a call.
            "policy": {"pricing": {"base": price("1000"), "cand": price("1000"), "judge": price("0")}},
        }
    )
    sink = MemoryTraceSink()
    gateway = build_gateway(settings, providers=providers, sink=sink, announce_admin_key=False)
    app = create_app(gateway=gateway)
    async with in_process_client(app) as http:
        yield Deck(app, gateway, upstream, sink, http)


def target(**spec: Any) -> ShadowTarget:
    shadow = ShadowSpec.model_validate({"judges": ["route:judge"], "sample": 1.0, **spec})
    return ShadowTarget(
        release="next", route="support", spec=shadow, candidate=VariantSpec(name="c", weight=1, route="support-next")
    )


def question(i: int, **extra: Any) -> dict[str, Any]:
    return {"model": "support", "messages": [{"role": "user", "content": f"question {i}"}], **extra}


def positions(log: list[tuple[str, ...]], entry: tuple[str, ...]) -> list[int]:
    return [i for i, e in enumerate(log) if e == entry]


async def test_the_candidate_is_called_only_after_the_whole_answer_was_sent(deck: Deck) -> None:
    deck.upstream.candidate_open.set()
    off = await deck.post(question(1))
    deck.shadow.begin(target())
    on = await deck.post(question(1))
    streamed = await deck.post(question(2, stream=True))
    await deck.shadow.mirror.drain()

    assert off == on and on[0] == 200  # the same status and the very same bytes with the shadow on
    log = deck.upstream.log
    last_body = positions(log, ("send", "http.response.body", "False"))
    candidate_calls = [i for i, e in enumerate(log) if e[:2] == ("upstream", "cand")]
    assert len(last_body) == 3 and len(candidate_calls) == 2
    # Each candidate call comes after the last byte of the answer it mirrors ...
    assert last_body[1] < candidate_calls[0] and last_body[2] < candidate_calls[1]
    # ... and the stream's chunks all went out before it, each passed on as it came.
    assert log[candidate_calls[1]][2] == "question 2"
    pairs = {p.baseline: p for p in deck.shadow.store.recent("next")}
    assert set(pairs) == {"baseline says: question 1", "baseline says: question 2 "}
    assert all(p.outcome == "win" and p.candidate and p.candidate.startswith("candidate says") for p in pairs.values())
    streamed_text = "".join(
        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed[1].decode().splitlines()
        if line.startswith("data: {")
    )
    assert streamed_text == "baseline says: question 2 "


async def test_candidate_calls_are_traced_apart_and_not_billed_to_the_user(deck: Deck) -> None:
    deck.upstream.candidate_open.set()
    deck.shadow.begin(target())
    status, _body = await deck.post(question(3))
    await deck.shadow.mirror.drain()
    assert status == 200
    user = next(r for r in deck.sink.records if r.route == "support")
    candidate = next(r for r in deck.sink.records if r.route == "support-next")
    assert SHADOW_TAG not in user.tags and user.key_id != "evaluation"
    assert {SHADOW_TAG, "shadow:next", "eval"} <= set(candidate.tags)
    assert candidate.key_id == "evaluation" and candidate.cost_micros == 15000
    assert candidate.metadata["shadow_of"] == user.id and candidate.metadata["release_variant"] == "candidate"
    judge_calls = [r for r in deck.sink.records if r.route == "judge"]
    assert len(judge_calls) == 2 and all("shadow:judge" in r.tags for r in judge_calls)  # both orders
    status_now = await asyncio.to_thread(deck.shadow.status, "next")
    assert status_now.counters.mirrored == 1 and status_now.counters.judged == 1
    assert status_now.counters.spent_micros == 15000 and status_now.verdict.wins == 1


async def test_a_full_queue_drops_and_counts_while_the_user_is_answered(deck: Deck) -> None:
    deck.shadow.begin(target(queue=1))
    first = await deck.post(question(1))
    await deck.upstream.candidate_entered.wait()  # the worker is now stuck on the candidate
    rest = [await deck.post(question(i)) for i in (2, 3, 4)]
    # Every user got the baseline's answer while the candidate had not answered once.
    assert [s for s, _ in [first, *rest]] == [200] * 4
    assert all(b"baseline says" in body for _, body in [first, *rest])
    counters = deck.shadow.mirror.counters("next")
    assert counters.dropped == 2  # question 2 waits in the queue of one; 3 and 4 are dropped
    deck.upstream.candidate_open.set()
    await deck.shadow.mirror.drain()
    counters = deck.shadow.mirror.counters("next")
    assert (counters.mirrored, counters.dropped, counters.judged) == (2, 2, 2)
    metrics = deck.gateway.metrics.exposition().decode()
    assert re.search(r'lmdeck_shadow_dropped_total\{release="next"\} 2\.0', metrics)
    assert re.search(r'lmdeck_shadow_mirrored_total\{release="next"\} 2\.0', metrics)


async def test_mirroring_stops_before_the_budget_is_exceeded(deck: Deck) -> None:
    deck.upstream.candidate_open.set()
    deck.shadow.begin(target(budget_micros=40000))
    for i in range(6):
        await deck.post(question(i))
        await deck.shadow.mirror.drain()
    counters = deck.shadow.mirror.counters("next")
    candidate_calls = [e for e in deck.upstream.log if e[:2] == ("upstream", "cand")]
    # 15000 a call: two fit in 40000, a third would not.
    assert len(candidate_calls) == counters.mirrored == 2
    assert counters.budget_exhausted == 4 and counters.spent_micros == 30000 <= 40000
    status = await asyncio.to_thread(deck.shadow.status, "next")
    assert status.budget_left_micros == 10000


async def test_what_other_processes_spent_counts_against_the_budget(deck: Deck) -> None:
    deck.upstream.candidate_open.set()
    spent_elsewhere = ShadowPair(
        id="elsewhere",
        release="next",
        baseline_trace_id=None,
        candidate_trace_id=None,
        outcome="tie",
        cost_micros=20000,
        created_at=time.time(),
    )
    await asyncio.to_thread(deck.shadow.store.add, spent_elsewhere)
    deck.shadow.begin(target(budget_micros=40000))
    for i in range(3):
        await deck.post(question(i))
        await deck.shadow.mirror.drain()
    counters = deck.shadow.mirror.counters("next")
    assert (counters.mirrored, counters.budget_exhausted, counters.spent_micros) == (1, 2, 35000)


async def test_failed_requests_own_traffic_and_unsampled_requests_are_not_mirrored(deck: Deck) -> None:
    deck.upstream.candidate_open.set()
    deck.shadow.begin(target(sample=0.5))
    for i in range(40):
        await deck.post(question(i))
    await deck.post({"model": "support", "messages": [{"role": "user", "content": "x"}], "n": "bad"})
    await deck.shadow.mirror.drain()
    mirrored = deck.shadow.mirror.counters("next").mirrored
    assert 5 < mirrored < 35  # about half: the request id hashed with the release name
    assert len([e for e in deck.upstream.log if e[:2] == ("upstream", "cand")]) == mirrored
    # The candidate's own calls and the judge's were not mirrored again.
    assert not [r for r in deck.sink.records if "shadow" in r.tags and r.route == "support"]


async def test_the_shadow_follows_the_releases_in_shadow(deck: Deck) -> None:
    spec = ReleaseSpec.model_validate(
        {
            "name": "next",
            "route": "support",
            "candidate": {"route": "support-next", "params": {"temperature": 0.1}},
            "shadow": {"judges": ["route:judge"], "sample": 1.0},
        }
    )
    deck.shadow.follow([ReleaseRecord(spec=spec, state="shadow", created_at=time.time())])
    followed = deck.shadow.mirror.target("next")
    assert followed is not None and followed.params == {"temperature": 0.1}
    deck.upstream.candidate_open.set()
    await deck.post(question(1))
    await deck.shadow.mirror.drain()
    assert deck.shadow.mirror.counters("next").mirrored == 1
    deck.shadow.follow([ReleaseRecord(spec=spec, state="canary", created_at=time.time())])
    assert deck.shadow.mirror.target("next") is None
    await deck.post(question(2))
    await deck.shadow.mirror.drain()
    assert deck.shadow.mirror.counters("next").mirrored == 1


async def test_the_shadow_status_api(deck: Deck) -> None:
    def release(name: str, **extra: Any) -> ReleaseRecord:
        spec = {"name": name, "route": "support", "candidate": {"route": "support-next"}, **extra}
        return ReleaseRecord(spec=ReleaseSpec.model_validate(spec), state="shadow", created_at=time.time())

    shadowed = release("next", shadow={"judges": ["route:judge"], "sample": 1.0, "min_pairs": 1})
    await asyncio.to_thread(deck.shadow.releases.create, shadowed)
    await asyncio.to_thread(deck.shadow.releases.create, release("plain"))
    await deck.shadow.refresh()
    deck.upstream.candidate_open.set()
    await deck.post(question(1))
    await deck.shadow.mirror.drain()
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = await deck.http.get("/api/releases/next/shadow?pairs=5", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is True and body["route"] == "support"
    assert body["counters"]["mirrored"] == 1 and body["counters"]["spent_micros"] == 15000
    assert body["verdict"]["wins"] == 1 and body["verdict"]["pairs"] == 1
    assert body["pairs"][0]["judgements"] == [{"judge": "route:judge", "orders": ["B", "A"], "outcome": "win"}]
    missing = await deck.http.get("/api/releases/nope/shadow", headers=auth)
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}
    plain = await deck.http.get("/api/releases/plain/shadow", headers=auth)
    assert plain.status_code == 404 and "no shadow stage" in plain.json()["error"]["message"]
    shown = (await deck.http.get("/api/releases/next", headers=auth)).json()
    assert shown["shadow"]["counters"] == body["counters"] and shown["shadow"]["verdict"] == body["verdict"]
    assert "shadow" not in (await deck.http.get("/api/releases/plain", headers=auth)).json()
    text = shadow_text(shown["shadow"])
    assert "1 mirrored, 0 dropped, 0 over budget, 0 failed, 1 judged; spent 15000 of 1000000" in text
    assert "shadow verdict: wait: 1 wins, 0 ties, 0 losses" in text
    bad = await deck.http.get("/api/releases/next/shadow?pairs=-1", headers=auth)
    assert bad.status_code == 400
    assert (await deck.http.get("/api/releases/next/shadow")).status_code == 401


async def test_a_release_whose_judge_cannot_judge_is_refused_at_creation(deck: Deck) -> None:
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    spec = {"name": "bad-judge", "route": "support", "candidate": {"route": "support-next"}}
    for judges, why in [
        (["exact"], "expected answer"),
        (["nope"], "unknown evaluator"),
        (["route:"], "names no route"),
    ]:
        r = await deck.http.post("/api/releases", json={**spec, "shadow": {"judges": judges}}, headers=auth)
        assert r.status_code == 400 and why in r.json()["error"]["message"], r.text
    r = await deck.http.post("/api/releases", json={**spec, "shadow": {}}, headers=auth)
    assert r.status_code == 400 and "judges" in r.json()["error"]["message"], r.text
