"""The exact response cache through a real ``lmdeck serve`` with the official ``openai`` SDK.

The upstream is the FAKE upstream process (it echoes the user's text and counts requests);
each test asks with text of its own, so the shared gateway's cache never carries one test's
answers into another.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

#: $2 per 1M input tokens and $8 per 1M output tokens, so savings are not zero.
PRICING = {"fake-model": {"input": "2", "output": "8"}}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def routes(fake: FakeUpstreamProcess) -> list[dict[str, Any]]:
    return [
        {"name": "cached", "targets": [openai_target(fake, max_retries=0)], "cache": {"enabled": True}},
        {
            "name": "sampled",
            "targets": [openai_target(fake, max_retries=0)],
            "cache": {"enabled": True, "allow_sampled": True},
        },
        {"name": "plain", "targets": [openai_target(fake, max_retries=0)]},
    ]


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return gateway(routes(fake_upstream), policy={"pricing": PRICING})


@pytest.fixture
def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=20)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def fresh_text() -> str:
    return f"what is the answer to question {uuid.uuid4().hex[:8]}"


def chat(client: OpenAI, text: str, *, route: str = "cached", mode: str | None = None, **extra: Any) -> Any:
    """The raw response (headers and body) of a non-streamed request."""
    headers = {"x-request-id": f"cache-{uuid.uuid4().hex}"}
    if mode is not None:
        headers["x-lmdeck-cache"] = mode
    extra.setdefault("temperature", 0)
    return client.chat.completions.with_raw_response.create(
        model=route, messages=ask(text), extra_headers=headers, **extra
    )


def stream(client: OpenAI, text: str, *, route: str = "cached", mode: str | None = None) -> tuple[Any, list[Any]]:
    """The raw response and the chunks of a streamed request (usage asked for)."""
    headers = {"x-request-id": f"cache-{uuid.uuid4().hex}"}
    if mode is not None:
        headers["x-lmdeck-cache"] = mode
    raw = client.chat.completions.with_raw_response.create(
        model=route,
        messages=ask(text),
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
        extra_headers=headers,
    )
    return raw, list(raw.parse())


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_repeated_request_is_answered_from_the_cache_as_json_and_as_a_stream(
    client: OpenAI, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    text = fresh_text()
    first = chat(client, text)
    assert first.headers["x-lmdeck-cache"] == "miss"
    original = first.parse()
    second = chat(client, text)
    assert second.headers["x-lmdeck-cache"] == "hit"
    assert int(second.headers["age"]) >= 0
    replayed = second.parse()
    assert replayed.model_dump() == original.model_dump()  # same id, content and usage
    assert replayed.usage is not None and replayed.usage.total_tokens > 0
    assert fake_upstream.count() == 1

    raw, chunks = stream(client, text)  # first answered as JSON, now asked as a stream
    assert raw.headers["x-lmdeck-cache"] == "hit"
    assert text_of(chunks) == original.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == original.usage.total_tokens
    assert fake_upstream.count() == 1

    trace = gw.trace(second.http_request.headers["x-request-id"])
    assert trace["cache_hit"] is True and trace["cache"] == "exact" and trace["cache_status"] == "hit"
    assert trace["route"] == "cached"
    source = gw.trace(first.http_request.headers["x-request-id"])
    assert trace["cache_source_id"] == source["id"]
    assert trace["cost_micros"] == 0 and source["cost_micros"] > 0
    assert trace["saved_micros"] == source["cost_micros"]
    assert trace["saved_tokens"] == source["input_tokens"] + source["output_tokens"]

    exposition = httpx.get(f"{gw.url}/metrics", headers=gw.headers(), timeout=10).text
    assert re.search(r'lmdeck_cache_hits_total\{cache="exact",route="cached",team="[^"]*"\} [1-9]', exposition)
    assert re.search(r'lmdeck_cache_saved_usd_total\{cache="exact",route="cached",team="[^"]*"\} [0-9.e-]+', exposition)


def test_a_streamed_answer_replays_chunked_like_the_original_with_usage(
    client: OpenAI, fake_upstream: FakeUpstreamProcess
) -> None:
    text = fresh_text()
    raw, original = stream(client, text)
    assert raw.headers["x-lmdeck-cache"] == "miss"
    raw2, replayed = stream(client, text)
    assert raw2.headers["x-lmdeck-cache"] == "hit"
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in original]
    assert len(replayed) > 3 and replayed[-1].usage is not None
    whole = chat(client, text)  # first streamed, now asked as JSON
    assert whole.headers["x-lmdeck-cache"] == "hit"
    answer = whole.parse()
    assert answer.choices[0].message.content == text_of(original) == text
    assert answer.usage is not None and answer.usage.total_tokens == original[-1].usage.total_tokens
    assert fake_upstream.count() == 1


def test_requests_differing_only_in_tools_do_not_share_an_answer(
    client: OpenAI, fake_upstream: FakeUpstreamProcess
) -> None:
    text = fresh_text()
    assert chat(client, text).headers["x-lmdeck-cache"] == "miss"
    with_tools = chat(client, text, tools=TOOLS, tool_choice="none")
    assert with_tools.headers["x-lmdeck-cache"] == "miss"
    assert chat(client, text, tools=TOOLS, tool_choice="none").headers["x-lmdeck-cache"] == "hit"
    assert fake_upstream.count() == 2


def test_teams_never_share_entries(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    admin = gw.headers()
    keys = []
    for _ in range(2):
        team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60)
        assert team.status_code in (200, 201), team.text
        key = httpx.post(
            f"{gw.url}/api/keys",
            json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"]},
            headers=admin,
            timeout=60,
        )
        assert key.status_code in (200, 201), key.text
        keys.append(key.json()["key"])
    team_a, team_b = (OpenAI(base_url=gw.base_url, api_key=k, max_retries=0, timeout=20) for k in keys)
    text = fresh_text()
    assert chat(team_a, text).headers["x-lmdeck-cache"] == "miss"
    assert chat(team_a, text).headers["x-lmdeck-cache"] == "hit"
    with pytest.raises(openai.APIStatusError) as refused:
        chat(team_b, text, mode="only-if-cached")
    assert refused.value.status_code == 504
    assert chat(team_b, text).headers["x-lmdeck-cache"] == "miss"
    assert chat(team_b, text).headers["x-lmdeck-cache"] == "hit"
    assert fake_upstream.count() == 2


def test_bypass_refresh_and_only_if_cached_do_as_named(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    text = fresh_text()
    with pytest.raises(openai.APIStatusError) as miss:
        chat(client, text, mode="only-if-cached")
    assert miss.value.status_code == 504
    body = miss.value.response.json()
    assert body["error"]["code"] == "cache_miss" and body["error"]["type"] == "timeout_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert miss.value.response.headers["x-lmdeck-cache"] == "miss"
    assert fake_upstream.count() == 0

    bypassed = chat(client, text, mode="bypass")
    assert bypassed.headers["x-lmdeck-cache"] == "bypass"
    with pytest.raises(openai.APIStatusError):
        chat(client, text, mode="only-if-cached")  # bypass kept nothing
    first = chat(client, text).parse()
    refreshed = chat(client, text, mode="refresh")
    assert refreshed.headers["x-lmdeck-cache"] == "miss"
    fresh = refreshed.parse()
    assert fresh.id != first.id
    cached = chat(client, text, mode="only-if-cached")
    assert cached.headers["x-lmdeck-cache"] == "hit"
    assert cached.parse().id == fresh.id  # refresh replaced the stored answer
    assert fake_upstream.count() == 3


def test_an_unknown_cache_mode_is_refused_by_name(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, fresh_text(), mode="no-store")
    error = refused.value.response.json()["error"]
    assert error["param"] == "x-lmdeck-cache" and "no-store" in error["message"]
    assert fake_upstream.count() == 0


def test_failed_and_cut_answers_leave_no_entry(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    text = fresh_text()
    fake_upstream.configure(script=[500])
    with pytest.raises(openai.APIStatusError):
        chat(client, text)
    with pytest.raises(openai.APIStatusError) as nothing:
        chat(client, text, mode="only-if-cached")
    assert nothing.value.status_code == 504

    long_text = " ".join(f"word{i}" for i in range(40)) + f" {uuid.uuid4().hex[:6]}"
    fake_upstream.configure(script=[{"do": "error_mid_stream", "after_chunks": 20}])
    with pytest.raises(openai.APIError):
        stream(client, long_text)
    with pytest.raises(openai.APIStatusError) as after_cut:
        chat(client, long_text, mode="only-if-cached")
    assert after_cut.value.status_code == 504
    raw, chunks = stream(client, long_text)  # the upstream answers whole now: kept
    assert raw.headers["x-lmdeck-cache"] == "miss" and text_of(chunks) == long_text
    assert chat(client, long_text, mode="only-if-cached").headers["x-lmdeck-cache"] == "hit"


def test_sampled_requests_are_cached_only_where_the_route_allows_it(
    client: OpenAI, fake_upstream: FakeUpstreamProcess
) -> None:
    text = fresh_text()
    assert chat(client, text, temperature=0.7).headers["x-lmdeck-cache"] == "bypass"
    assert chat(client, text, temperature=0.7).headers["x-lmdeck-cache"] == "bypass"
    assert fake_upstream.count() == 2
    assert chat(client, text, route="sampled", temperature=0.7).headers["x-lmdeck-cache"] == "miss"
    assert chat(client, text, route="sampled", temperature=0.7).headers["x-lmdeck-cache"] == "hit"
    assert fake_upstream.count() == 3
    plain = chat(client, text, route="plain")
    assert "x-lmdeck-cache" not in plain.headers


def test_moving_a_prompt_label_makes_the_old_answer_unreachable(
    client: OpenAI, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    name = f"p-{uuid.uuid4().hex[:8]}"
    admin = gw.headers()
    for text in ("Answer briefly about {{ topic }}.", "Answer at length about {{ topic }}."):
        made = httpx.post(
            f"{gw.url}/api/registry/prompts/{name}/versions",
            json={"text": text, "variables": {"topic": "string"}, "route": "cached"},
            headers=admin,
            timeout=60,
        )
        assert made.status_code in (200, 201), made.text
    label = f"{gw.url}/api/registry/prompts/{name}/labels/production"
    assert httpx.put(label, json={"version": 1}, headers=admin, timeout=60).status_code == 200
    prompt = {"name": name, "variables": {"topic": "caching"}}
    text = fresh_text()

    def ask_with_prompt() -> Any:
        return client.chat.completions.with_raw_response.create(
            model="cached",
            messages=ask(text),
            temperature=0,
            extra_body={"prompt": prompt},
            extra_headers={"x-request-id": f"cache-{uuid.uuid4().hex}"},
        )

    assert ask_with_prompt().headers["x-lmdeck-cache"] == "miss"
    assert ask_with_prompt().headers["x-lmdeck-cache"] == "hit"
    assert httpx.put(label, json={"version": 2}, headers=admin, timeout=60).status_code == 200
    moved = ask_with_prompt()
    assert moved.headers["x-lmdeck-cache"] == "miss"
    assert gw.trace(moved.http_request.headers["x-request-id"])["prompt_version"] == 2
    assert fake_upstream.count() == 2


def test_savings_show_in_the_spend_api_and_cli(gw: GatewayProcess) -> None:
    from typer.testing import CliRunner

    from lmdeck.cli.main import app

    admin = gw.headers()
    team = httpx.post(
        f"{gw.url}/api/teams", json={"name": f"s-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60
    ).json()
    key = httpx.post(
        f"{gw.url}/api/keys",
        json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team["id"]},
        headers=admin,
        timeout=60,
    )
    sdk = OpenAI(base_url=gw.base_url, api_key=key.json()["key"], max_retries=0, timeout=20)
    text = fresh_text()
    sent = [chat(sdk, text) for _ in range(3)]
    assert [r.headers["x-lmdeck-cache"] for r in sent] == ["miss", "hit", "hit"]
    traces = [gw.trace(r.http_request.headers["x-request-id"]) for r in sent]  # stored, rollups with them
    paid = traces[0]["cost_micros"]
    assert paid > 0

    report = httpx.get(f"{gw.url}/api/spend", params={"by": "team", "period": "day"}, headers=admin, timeout=60).json()
    (row,) = [r for r in report["data"] if r["group"] == team["id"]]
    assert (row["requests"], row["cache_hits"], row["cost_micros"], row["saved_micros"]) == (3, 2, paid, 2 * paid)
    assert row["cache_hit_rate"] == pytest.approx(2 / 3)
    assert row["saved_tokens"] == 2 * (traces[0]["input_tokens"] + traces[0]["output_tokens"])
    assert report["total_saved_micros"] >= 2 * paid

    args = ["spend", "--savings", "--by", "team", "--period", "day", "--base-url", gw.url, "--api-key", gw.admin_key]
    shown = CliRunner().invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    assert any(r["group"] == team["id"] and r["saved_micros"] == 2 * paid for r in json.loads(shown.output)["data"])
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "Cache savings by team" in table.output and "HIT RATE" in table.output


def test_answers_an_output_guardrail_blocks_leave_no_entry(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess
) -> None:
    guarded = {
        "name": "guarded",
        "targets": [openai_target(fake_upstream, max_retries=0)],
        "cache": {"enabled": True},
        "guardrails": {"output": [{"use": "no-secret", "action": "block"}], "stream_window": 64},
    }
    gw = gateway(
        [guarded], guardrails={"definitions": {"no-secret": {"type": "regex", "options": {"words": ["zebra"]}}}}
    )
    sdk = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=20)
    text = f"{fresh_text()} zebra"  # the FAKE upstream echoes it: the answer holds the blocked word
    with pytest.raises(openai.APIStatusError) as blocked:
        chat(sdk, text, route="guarded")
    assert blocked.value.status_code == 422
    assert blocked.value.response.json()["error"]["code"] == "content_policy_violation"
    with pytest.raises(openai.APIError):
        stream(sdk, text, route="guarded")  # the stream is cut
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as nothing:
            chat(sdk, text, route="guarded", mode="only-if-cached")
        assert nothing.value.status_code == 504
    assert fake_upstream.count() == 2
    clean = fresh_text()
    assert chat(sdk, clean, route="guarded").headers["x-lmdeck-cache"] == "miss"
    assert chat(sdk, clean, route="guarded").headers["x-lmdeck-cache"] == "hit"


def test_a_hit_never_skips_the_callers_own_output_guardrails(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess
) -> None:
    strict = {"output": [{"use": "no-forbidden", "action": "block"}], "stream_window": 64}
    gw = gateway(
        routes(fake_upstream),
        guardrails={
            "definitions": {"no-forbidden": {"type": "regex", "options": {"words": ["forbidden"]}}},
            "keys": {"cache-a2": strict},
        },
    )
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60)
    assert team.status_code in (200, 201), team.text
    sdks = []
    for name in ("cache-a1", "cache-a2"):  # one team: one cache scope
        made = httpx.post(
            f"{gw.url}/api/keys", json={"name": name, "team_id": team.json()["id"]}, headers=admin, timeout=60
        )
        assert made.status_code in (200, 201), made.text
        sdks.append(OpenAI(base_url=gw.base_url, api_key=made.json()["key"], max_retries=0, timeout=20))
    a1, a2 = sdks
    text = f"a forbidden secret phrase here {uuid.uuid4().hex[:8]}"  # the FAKE upstream echoes it
    assert chat(a1, text).headers["x-lmdeck-cache"] == "miss"
    assert "forbidden" in chat(a1, text).parse().choices[0].message.content
    first, replayed = stream(a1, text)
    assert replayed and first.headers["x-lmdeck-cache"] == "hit"
    with pytest.raises(openai.APIStatusError) as blocked:
        chat(a2, text)
    assert blocked.value.status_code == 422
    assert blocked.value.response.json()["error"]["code"] == "content_policy_violation"
    with pytest.raises(openai.APIError):
        stream(a2, text)  # cut, not replayed from a1's entry
    with pytest.raises(openai.APIStatusError) as nothing:
        chat(a2, text, mode="only-if-cached")
    assert nothing.value.status_code == 504  # a1's answer is not a2's to read
    # a2 still has a cache of its own, under its own policy, which a1 does not read either.
    clean = fresh_text()
    assert chat(a2, clean).headers["x-lmdeck-cache"] == "miss"
    assert chat(a2, clean).headers["x-lmdeck-cache"] == "hit"
    assert chat(a1, clean).headers["x-lmdeck-cache"] == "miss"
