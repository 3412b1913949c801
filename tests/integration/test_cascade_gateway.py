"""The cascade strategy through a real ``lmdeck serve``, with the official openai SDK.

The cheap tier is the bundled demo model (in-process, with token log-probabilities), the last
tier the FAKE upstream standing in for a large model (it echoes the question). Which questions
the demo model is confident about is measured first, on the `demo` route itself; each cascade
request is then judged by what it observed: its answer, and the tier its trace says answered.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

#: Least token log-probability of a kept answer: the demo model's skills stay above it, off-skill
#: questions fall below (measured: in-skill minimum >= -0.06, off-skill <= -0.24).
MIN_LOGPROB = -0.15
QUESTIONS = [
    "What is 12+7?",
    "Reverse: planet",
    "Capital of Peru?",
    "Extract JSON: Ana is 34 and lives in Oslo.",
    "How many 'u' in ixux?",
    "Tell me a story about dragons and the sea.",
    "What is the meaning of life?",
    "Translate 'good morning' into French.",
]
LOCAL_DEMO = {"provider": "local", "model": "demo", "timeout": 120, "max_retries": 0}


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    large = openai_target(fake_upstream, "large-model", max_retries=0)
    routes: list[dict[str, Any]] = [
        {
            "name": "smart",
            "strategy": "cascade",
            "targets": [LOCAL_DEMO, large],
            "cascade": {"checks": [{"kind": "logprob", "aggregate": "min", "min_logprob": MIN_LOGPROB}]},
        },
        {
            "name": "smart-json",
            "strategy": "cascade",
            "targets": [LOCAL_DEMO, large],
            "cascade": {"checks": [{"kind": "evaluator", "evaluator": {"name": "json_valid"}}], "stream": "refuse"},
        },
    ]
    return gateway(routes, default_routes=True)


def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=120)


def ask(gw: GatewayProcess, model: str, question: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    """The answer's text and the trace's routing decision."""
    request_id = f"cascade-{uuid.uuid4().hex}"
    messages: Any = [{"role": "user", "content": question}]
    headers = {"x-request-id": request_id}
    if extra.get("stream"):
        stream = client(gw).chat.completions.create(model=model, messages=messages, extra_headers=headers, **extra)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    else:
        answer = client(gw).chat.completions.create(model=model, messages=messages, extra_headers=headers, **extra)
        assert answer.choices[0].logprobs is None  # asked of the demo model for the check, not given to us
        text = answer.choices[0].message.content or ""
    return text, gw.trace(request_id)["metadata"]["routing"]


def demo_confidence(gw: GatewayProcess, question: str) -> tuple[str, float]:
    """The demo model's own answer and its least token log-probability."""
    answer = client(gw).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": question}], logprobs=True
    )
    assert answer.choices[0].logprobs is not None and answer.choices[0].logprobs.content
    return answer.choices[0].message.content or "", min(t.logprob for t in answer.choices[0].logprobs.content)


def test_confident_small_answers_are_kept_and_the_others_escalate(gw: GatewayProcess) -> None:
    kept = escalated = 0
    for question in QUESTIONS:
        demo_answer, confidence = demo_confidence(gw, question)
        text, routing = ask(gw, "smart", question)
        assert routing["strategy"] == "cascade"
        if confidence >= MIN_LOGPROB:
            kept += 1
            assert (text, routing["tier"], routing["answered_by"]) == (demo_answer, 0, "local:demo"), question
            assert routing["reason"].startswith("confident: min token logprob")
        else:
            escalated += 1
            assert text == question, question  # the fake large model echoes
            assert routing["tier"] == 1 and routing["answered_by"].startswith("openai:large-model")
            first = routing["tiers"][0]
            assert (first["target"], first["outcome"]) == ("local:demo", "escalated")
            assert first["score"] < MIN_LOGPROB
    assert kept >= 3 and escalated >= 3, (kept, escalated)
    metrics = httpx.get(f"{gw.url}/metrics", headers=gw.headers(), timeout=60).text
    assert 'lmdeck_escalations_total{route="smart",strategy="cascade"}' in metrics
    assert 'lmdeck_escalation_rate{route="smart"}' in metrics


def test_a_stream_is_judged_whole_then_replayed_or_streamed_from_the_large_model(gw: GatewayProcess) -> None:
    text, routing = ask(gw, "smart", "Reverse: planet", stream=True, stream_options={"include_usage": True})
    assert (text, routing["tier"]) == ("tenalp", 0)
    text, routing = ask(gw, "smart", "What is the meaning of life?", stream=True)
    assert (text, routing["tier"]) == ("What is the meaning of life?", 1)


def test_an_evaluator_check_keeps_valid_json_and_escalates_the_rest(gw: GatewayProcess) -> None:
    text, routing = ask(gw, "smart-json", "Extract JSON: Ana is 34 and lives in Oslo.")
    assert routing["tier"] == 0 and text == '{"name": "Ana", "age": 34, "city": "Oslo"}'
    assert routing["reason"] == "confident: json_valid scored 1 >= 1"
    text, routing = ask(gw, "smart-json", "Reverse: planet")
    assert routing["tier"] == 1 and text == "Reverse: planet"
    assert routing["tiers"][0]["outcome"] == "escalated"


def test_a_route_that_refuses_streams_answers_400_naming_stream(gw: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).chat.completions.create(
            model="smart-json", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    body = raised.value.body
    assert isinstance(body, dict) and body["param"] == "stream" and body["code"] == "unsupported_parameter"
