"""The prompt registry through its API, and prompts rendered by the gateway."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Deck

V1 = {
    "messages": [
        {"role": "system", "content": "You answer for {{ company }}."},
        {"role": "user", "content": "Customer {{ customer }} asks: {{ question }}"},
    ],
    "variables": {"company": {"type": "string", "default": "Acme"}, "customer": "string", "question": "string"},
    "parameters": {"temperature": 0.2},
    "route": "plain",
    "commit_message": "first draft",
}
V2 = {
    **V1,
    "messages": [V1["messages"][0], {"role": "user", "content": "{{ customer }}: {{ question }}"}],
    "commit_message": "shorter",
}


async def create(deck: Deck, spec: dict[str, Any], name: str = "support-reply") -> dict[str, Any]:
    r = await deck.client.post(f"/api/registry/prompts/{name}/versions", json=spec, headers=deck.auth("developer"))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def label(deck: Deck, version: int, name: str = "production", role: str = "admin") -> Any:
    return await deck.client.put(
        f"/api/registry/prompts/support-reply/labels/{name}", json={"version": version}, headers=deck.auth(role)
    )


def messages_seen(response: Any) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = json.loads(response.json()["choices"][0]["message"]["content"])["messages"]
    return seen


async def test_versions_labels_history_and_diff(deck: Deck) -> None:
    first = await create(deck, V1)
    assert first["version"] == 1 and first["created_by"].startswith("key:") and first["commit_message"] == "first draft"
    await create(deck, V2)
    assert (await label(deck, 1, role="developer")).status_code == 403
    assert (await label(deck, 1)).status_code == 200
    assert (await label(deck, 2, name="staging", role="developer")).status_code == 200
    assert (await label(deck, 2)).status_code == 200
    history = (
        await deck.client.get("/api/registry/prompts/support-reply/history", headers=deck.auth("viewer"))
    ).json()["data"]
    assert [(h["label"], h["from_version"], h["to_version"]) for h in history] == [
        ("production", 1, 2),
        ("staging", None, 2),
        ("production", None, 1),
    ]
    diff = (
        await deck.client.get(
            "/api/registry/prompts/support-reply/diff", params={"from": 1, "to": 2}, headers=deck.auth("viewer")
        )
    ).json()
    assert "-  content: 'Customer {{ customer }} asks: {{ question }}'" in diff["template"]
    assert "+  content: '{{ customer }}: {{ question }}'" in diff["template"]
    assert diff["changes"] == {"commit_message": {"from": "first draft", "to": "shorter"}}
    resolved = (
        await deck.client.get(
            "/api/registry/prompts/support-reply/resolve", params={"label": "staging"}, headers=deck.auth("viewer")
        )
    ).json()
    assert resolved["version"] == 2 and resolved["label"] == "staging"


async def test_invalid_templates_are_refused_at_creation(deck: Deck) -> None:
    for spec in (
        {"text": "Hello {{ who }}"},
        {"text": "{% if %}", "variables": {}},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"text": "a", "messages": [{"role": "user", "content": "b"}]},
    ):
        r = await deck.client.post("/api/registry/prompts/p/versions", json=spec, headers=deck.auth("developer"))
        assert r.status_code == 400, (spec, r.text)
        assert r.json()["error"]["message"]


async def test_gateway_renders_a_prompt_and_stamps_the_trace(deck: Deck) -> None:
    await create(deck, V1)
    await label(deck, 1)
    prompt = {"name": "support-reply", "variables": {"customer": "Ada", "question": "where is my order?"}}
    r = await deck.chat(prompt=prompt, messages=[{"role": "user", "content": "order 42"}])
    assert r.status_code == 200, r.text
    assert messages_seen(r) == [
        {"role": "system", "content": "You answer for Acme."},
        {"role": "user", "content": "Customer Ada asks: where is my order?"},
        {"role": "user", "content": "order 42"},
    ]
    assert json.loads(r.json()["choices"][0]["message"]["content"])["temperature"] == 0.2
    trace = deck.sink.records[-1]
    assert (trace.prompt_name, trace.prompt_version, trace.route) == ("support-reply", 1, "plain")
    assert trace.bundle_hash and len(trace.bundle_hash) == 64
    assert trace.request_body["prompt"]["name"] == "support-reply"
    assert trace.request_body["messages"][1]["content"] == "Customer Ada asks: where is my order?"


async def test_label_move_changes_what_the_gateway_renders(deck: Deck) -> None:
    await create(deck, V1)
    await create(deck, V2)
    await label(deck, 1, name="staging", role="developer")
    prompt = {"name": "support-reply", "label": "staging", "variables": {"customer": "Ada", "question": "hi"}}
    assert messages_seen(await deck.chat(prompt=prompt))[1]["content"] == "Customer Ada asks: hi"
    await label(deck, 2, name="staging", role="developer")
    assert messages_seen(await deck.chat(prompt=prompt))[1]["content"] == "Ada: hi"
    pinned = {**prompt, "label": None, "version": 1}
    assert messages_seen(await deck.chat(prompt=pinned))[1]["content"] == "Customer Ada asks: hi"


async def test_variable_problems_are_400s_that_name_them(deck: Deck) -> None:
    await create(deck, V1)
    await label(deck, 1)
    cases = [
        ({"customer": "Ada"}, "missing variable: question"),
        ({"customer": "Ada", "question": "q", "mood": "angry"}, "unknown variable: mood"),
        ({"customer": 7, "question": "q"}, "variable customer: expected string, got int"),
    ]
    for variables, fragment in cases:
        r = await deck.chat(prompt={"name": "support-reply", "variables": variables})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert fragment in error["message"] and error["param"] == "prompt.variables"


async def test_prompt_request_errors_are_4xx(deck: Deck) -> None:
    await create(deck, {**V1, "route": None})
    await label(deck, 1)
    variables = {"customer": "A", "question": "q"}
    cases = [
        ({"prompt": {"name": "nope"}}, 404),
        ({"prompt": {"name": "support-reply", "label": "gone", "variables": variables}}, 404),
        ({"prompt": {"name": "support-reply", "variables": variables}}, 400),  # no route bound, no model
        ({"prompt": {"name": "support-reply", "label": "a", "version": 1}}, 400),
        ({"prompt": {"name": "support-reply", "bogus": 1}}, 400),
        ({"prompt": "support-reply"}, 400),
        ({"model": "plain"}, 400),  # neither messages nor prompt
    ]
    for body, status in cases:
        r = await deck.chat(**body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["message"]
    ok = await deck.chat(model="plain", prompt={"name": "support-reply", "variables": variables})
    assert ok.status_code == 200


async def test_sandbox_escape_through_the_gateway_is_a_400(deck: Deck) -> None:
    spec = {
        "text": "{{ customer.__class__.__mro__[1].__subclasses__() }}",
        "variables": {"customer": "string"},
        "route": "plain",
    }
    await create(deck, spec, name="sneaky")
    r = await deck.chat(prompt={"name": "sneaky", "version": 1, "variables": {"customer": "x"}})
    assert r.status_code == 400 and "sandbox" in r.json()["error"]["message"]


async def test_render_endpoint(deck: Deck) -> None:
    await create(deck, V1)
    r = await deck.client.post(
        "/api/registry/prompts/support-reply/render",
        json={"version": 1, "variables": {"customer": "Ada", "question": "q"}},
        headers=deck.auth("viewer"),
    )
    assert r.status_code == 200 and r.json()["messages"][1]["content"] == "Customer Ada asks: q"
    assert r.json()["parameters"] == {"temperature": 0.2}


async def test_streamed_prompt_request(deck: Deck) -> None:
    await create(deck, V1)
    await label(deck, 1)
    r = await deck.chat(stream=True, prompt={"name": "support-reply", "variables": {"customer": "A", "question": "q"}})
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert deck.sink.records[-1].prompt_version == 1
