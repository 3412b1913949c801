"""Online evaluation: sampling by rule, off the request path, scores in the store, /metrics and OTel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmdeck.evaluation import Sample, Score
from lmdeck.evaluation.export import EvaluationEvents
from lmdeck.protocol.evaluation import OnlineRule, TraceFilter
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings

from .conftest import Deck


def test_sampling_rate_is_within_tolerance_and_deterministic() -> None:
    rule = OnlineRule(name="r", sample_rate="20%", evaluators=["json_valid"])
    records = [TraceRecord(route="demo") for _ in range(10_000)]
    sampled = [r for r in records if rule.sampled(r)]
    assert abs(len(sampled) / 10_000 - 0.2) < 4 * (0.2 * 0.8 / 10_000) ** 0.5
    assert all(rule.sampled(r) for r in sampled)
    assert not any(OnlineRule(name="r", sample_rate=0, evaluators=["exact"]).sampled(r) for r in records[:100])


def test_trace_filter() -> None:
    record = TraceRecord(route="demo", prompt_name="p", prompt_version=2, upstream_model="m", tags=["a"])
    assert TraceFilter().matches(record)
    assert TraceFilter(route="demo", prompt="p", prompt_version=2, model="m", tag="a").matches(record)
    assert not TraceFilter(prompt_version=3).matches(record)
    assert not TraceFilter(tag="b").matches(record)
    failed = TraceRecord(route="demo", status_code=500)
    assert not TraceFilter().matches(failed)
    assert TraceFilter(status="error").matches(failed) and TraceFilter(status="any").matches(failed)


async def put_rule(deck: Deck, name: str, **body: Any) -> None:
    r = await deck.call("PUT", f"/api/evaluation/online/rules/{name}", json=body, who="developer")
    assert r.status_code == 200, r.text


async def ask(deck: Deck, n: int, model: str = "calc") -> list[str]:
    ids = []
    for i in range(n):
        r = await deck.chat(model=model, messages=[{"role": "user", "content": f"What is {i} + 1?"}])
        assert r.status_code == 200
        ids.append(deck.gateway.sink.records[-1].id)  # type: ignore[attr-defined]
    return ids


async def test_rule_scores_exactly_the_sampled_traces(deck: Deck) -> None:
    await put_rule(
        deck, "numbers", filter={"route": "calc"}, sample_rate=0.5, evaluators=["regex:pattern=^\\d+$&full=true"]
    )
    ids = await ask(deck, 120)
    await ask(deck, 10, model="sloppy")  # not matched by the filter
    await deck.evaluation.online.queue.join()
    rule = deck.evaluation.online.rules[0]
    expected = {i for i in ids if rule.sampled(TraceRecord(id=i))}
    scores = (await deck.call("GET", "/api/evaluation/online/scores", params={"limit": 1000})).json()["data"]
    assert {s["trace_id"] for s in scores} == expected
    assert 0.3 < len(expected) / 120 < 0.7
    assert all(s["value"] == 1.0 and s["route"] == "calc" for s in scores)
    summary = (await deck.call("GET", "/api/evaluation/online/summary", who="viewer")).json()["data"]
    assert summary == [
        {
            "route": "calc",
            "prompt": None,
            "prompt_version": None,
            "model": "careful",
            "evaluator": "regex",
            "count": len(expected),
            "mean": 1.0,
        }
    ]
    metrics = (await deck.client.get("/metrics")).text
    series = (
        'lmdeck_eval_score_count{evaluator="regex",model="careful",prompt="none",prompt_version="none",route="calc"}'
    )
    assert f"{series} {float(len(expected))}" in metrics


async def test_a_blocked_evaluator_never_holds_a_request(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> None:
    release = asyncio.Event()
    started = 0

    async def stuck(sample: Sample) -> Score:
        nonlocal started
        started += 1
        await release.wait()
        return Score(1.0)

    settings = make_settings(evaluation={"queue_size": 5, "workers": 1})
    async with start_deck(settings) as deck:
        deck.evaluation.evaluators.add_function("stuck", stuck)
        await put_rule(deck, "all", sample_rate=1.0, evaluators=["stuck"])
        # Every request answers while the evaluator cannot finish; the queue fills and drops the rest.
        await asyncio.wait_for(ask(deck, 30), timeout=60)
        online = deck.evaluation.online
        assert started == 1 and online.queue.dropped >= 30 - 1 - 5
        metrics = (await deck.client.get("/metrics")).text
        assert 'lmdeck_eval_queue_dropped_total{queue="online-eval"}' in metrics
        release.set()
        await online.queue.join()
        stored = (await deck.call("GET", "/api/evaluation/online/scores", params={"limit": 1000})).json()["data"]
        assert len(stored) == online.queue.accepted


async def test_an_llm_judge_rule_goes_through_the_gateway_without_judging_itself(deck: Deck) -> None:
    await put_rule(deck, "judged", filter={"route": "calc"}, sample_rate=1.0, evaluators=['llm_judge:route="calc"'])
    await ask(deck, 3)
    await deck.evaluation.online.queue.join()
    scores = (await deck.call("GET", "/api/evaluation/online/scores")).json()["data"]
    assert len(scores) == 3 and all(s["value"] == 1.0 and s["label"] == "pass" for s in scores)
    judge_traces = [t for t in deck.gateway.sink.records if "eval:online" in t.tags]  # type: ignore[attr-defined]
    assert len(judge_traces) == 3 and all(t.key_id == "evaluation" for t in judge_traces)


async def test_rules_reject_bad_evaluators_and_can_be_deleted(deck: Deck) -> None:
    bad = await deck.call("PUT", "/api/evaluation/online/rules/x", json={"sample_rate": 0.1, "evaluators": ["nope"]})
    assert bad.status_code == 400 and "unknown evaluator" in bad.json()["error"]["message"]
    rate = await deck.call("PUT", "/api/evaluation/online/rules/x", json={"sample_rate": 2, "evaluators": ["exact"]})
    assert rate.status_code == 400
    await put_rule(deck, "x", sample_rate=0.1, evaluators=["json_valid"])
    assert [r["name"] for r in (await deck.call("GET", "/api/evaluation/online/rules")).json()["data"]] == ["x"]
    assert (await deck.call("DELETE", "/api/evaluation/online/rules/x", who="developer")).status_code == 204
    assert (await deck.call("DELETE", "/api/evaluation/online/rules/x")).status_code == 404
    assert (await deck.call("GET", "/api/evaluation/online/rules")).json()["data"] == []


def test_scores_become_gen_ai_evaluation_events() -> None:
    exporter = InMemorySpanExporter()
    events = EvaluationEvents(SimpleSpanProcessor(exporter))
    record = TraceRecord(trace_id="ab" * 16, span_id="cd" * 8, route="demo")
    events.emit(record, "json_valid", Score(1.0, label="valid", explanation="valid JSON"))
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == int("cd" * 8, 16)
    assert span.context.trace_id == int("ab" * 16, 16)
    (event,) = span.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == {
        "gen_ai.evaluation.name": "json_valid",
        "gen_ai.evaluation.score.value": 1.0,
        "gen_ai.evaluation.score.label": "valid",
        "gen_ai.evaluation.explanation": "valid JSON",
        "lmdeck.trace_record_id": record.id,
        "lmdeck.route": "demo",
    }
    events.shutdown()


@pytest.fixture
async def configured_deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    settings = make_settings(
        evaluation={"online_rules": [{"name": "from-config", "sample_rate": "100%", "evaluators": ["json_valid"]}]}
    )
    async with start_deck(settings) as deck:
        yield deck


async def test_rules_from_the_config_file(configured_deck: Deck) -> None:
    rules = (await configured_deck.call("GET", "/api/evaluation/online/rules")).json()["data"]
    assert [r["name"] for r in rules] == ["from-config"]
    await ask(configured_deck, 2)
    await configured_deck.evaluation.online.queue.join()
    scores = (await configured_deck.call("GET", "/api/evaluation/online/scores")).json()["data"]
    assert [s["label"] for s in scores] == ["valid", "valid"]
