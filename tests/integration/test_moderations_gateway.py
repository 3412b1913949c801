"""``/v1/moderations`` through a real ``lmdeck serve``, with the official ``openai`` SDK.

The gateway is the files module's (same configuration, so one process serves both): guardrails
``pii`` and ``no-forbidden`` defined, route ``guarded`` attaching ``pii`` on input.
"""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.protocol.moderations import OPENAI_CATEGORIES
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

PII = "My email is ana.lopez@example.org and my card is 4111 1111 1111 1111."
BENIGN = "What is the capital of France?"


#: As in ``test_files_gateway``: the same configuration, so the session's factory shares the process.
GUARDRAILS = {
    "definitions": {
        "pii": {"type": "pii", "options": {"entities": ["EMAIL_ADDRESS", "CREDIT_CARD"]}},
        "no-forbidden": {"type": "regex", "options": {"words": ["forbidden"]}},
    }
}


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [
        {"name": "chat", "targets": [openai_target(fake_upstream_server)]},
        {
            "name": "guarded",
            "targets": [openai_target(fake_upstream_server)],
            "guardrails": {"input": [{"use": "pii", "action": "block"}]},
        },
    ]
    gw = gateway(routes, batches={"max_file_bytes": 8192}, guardrails=GUARDRAILS)
    # The guardrails warm up in the background after start (Presidio's analyzer); on a loaded machine a
    # check before that can pass its timeout and answer 503: poll until one answers.
    deadline = time.monotonic() + 180
    while True:
        try:
            sdk(gw).moderations.create(input=BENIGN)
            return gw
        except openai.InternalServerError:
            assert time.monotonic() < deadline, "the guardrails never answered"
            time.sleep(0.5)


def key_with(gw: GatewayProcess, **limits: int) -> str:
    body = {"name": f"k-{uuid.uuid4().hex[:8]}", **limits}
    key = httpx.post(f"{gw.url}/api/keys", json=body, headers=gw.headers(), timeout=60)
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def sdk(gw: GatewayProcess, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key or gw.admin_key, max_retries=0, timeout=60)


def test_pii_is_flagged_and_a_benign_text_passes_in_openai_shape(gw: GatewayProcess) -> None:
    rid = f"mod-{uuid.uuid4().hex}"
    response = sdk(gw).moderations.create(input=[BENIGN, PII], extra_headers={"x-request-id": rid})
    assert response.model == "lmdeck-guardrails" and response.id
    benign, pii = response.results
    assert not benign.flagged and pii.flagged
    categories = pii.categories.model_dump(by_alias=True)
    scores = pii.category_scores.model_dump(by_alias=True)
    # OpenAI's own categories are never judged by lmdeck's guardrails: false and 0, not invented.
    assert all(categories[c] is False and scores[c] == 0.0 for c in OPENAI_CATEGORIES)
    extra = pii.categories.model_extra or {}
    assert extra["lmdeck/pii"] is True and extra["lmdeck/regex"] is False
    assert (pii.category_scores.model_extra or {})["lmdeck/pii"] > 0
    assert not any((benign.categories.model_extra or {}).values())
    trace = gw.trace(rid)
    assert trace["kind"] == "moderations" and trace["metadata"]["moderation"]["flagged"] == [False, True]
    assert PII not in str(trace)  # the verdicts are traced, never the text


def test_model_names_a_route_or_a_guardrail(gw: GatewayProcess) -> None:
    client = sdk(gw)
    assert client.moderations.create(input=PII, model="guarded").results[0].flagged
    by_guardrail = client.moderations.create(input="this is forbidden", model="no-forbidden")
    assert by_guardrail.model == "no-forbidden" and by_guardrail.results[0].flagged
    assert not client.moderations.create(input=PII, model="no-forbidden").results[0].flagged
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(input=PII, model="nope")
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_moderations_are_authenticated_and_rate_limited(gw: GatewayProcess) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-not-a-key").moderations.create(input=BENIGN)
    limited = sdk(gw, key_with(gw, rpm=1))
    assert not limited.moderations.create(input=BENIGN).results[0].flagged
    with pytest.raises(openai.RateLimitError):
        limited.moderations.create(input=BENIGN)
