"""``/api/flags`` in process: CRUD, history, evaluation, permissions, bad input, and live effect on requests."""

from __future__ import annotations

from typing import Any

from .conftest import FlagDeck


def flag(name: str, **spec: Any) -> dict[str, Any]:
    return {"name": name, **spec}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


async def test_create_read_update_history_and_delete(deck: FlagDeck) -> None:
    created = await deck.call("POST", "/api/flags", json=flag("support-v2", routes=["support"]))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1 and body["spec"]["value"] is True and body["spec"]["default"] is False
    assert_error(await deck.call("POST", "/api/flags", json=flag("support-v2")), 409, "version_conflict")

    updated = await deck.call(
        "PUT", "/api/flags/support-v2", json=flag("support-v2", routes=["support"], enabled=False)
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2, updated.text
    stale = await deck.call("PUT", "/api/flags/support-v2?expected_version=1", json=flag("support-v2"))
    assert_error(stale, 409, "version_conflict")
    enabled = await deck.call("POST", "/api/flags/support-v2/enable")
    assert enabled.json()["spec"]["enabled"] is True and enabled.json()["version"] == 3

    listed = (await deck.call("GET", "/api/flags", who="blue-dev")).json()["data"]
    assert [f["name"] for f in listed] == ["support-v2"]
    history = (await deck.call("GET", "/api/flags/support-v2/history", who="blue-dev")).json()["data"]
    assert [(h["version"], h["action"]) for h in history] == [(3, "enabled"), (2, "updated"), (1, "created")]
    assert history[1]["spec"]["enabled"] is False and history[0]["actor"].startswith("key:")

    assert (await deck.call("DELETE", "/api/flags/support-v2")).status_code == 200
    assert_error(await deck.call("GET", "/api/flags/support-v2"), 404, "flag_not_found")
    after = (await deck.call("GET", "/api/flags/support-v2/history")).json()["data"]
    assert after[0]["action"] == "deleted" and after[0]["spec"] is None and len(after) == 4

    audit = (await deck.call("GET", "/api/audit", params={"target": "flag:support-v2"})).json()["data"]
    assert {e["action"] for e in audit} >= {"flag.created", "flag.updated", "flag.enabled", "flag.deleted"}


async def test_bad_input_is_a_4xx_in_openai_shape(deck: FlagDeck) -> None:
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/api/flags", {"name": "bad name!"}),
        ("POST", "/api/flags", {"name": "n", "type": "string"}),  # a string flag needs value and default
        ("POST", "/api/flags", {"name": "n", "type": "number", "value": "x", "default": 1}),
        ("POST", "/api/flags", {"name": "n", "rules": [{"value": True}]}),  # a rule without condition
        ("POST", "/api/flags", {"name": "n", "rules": [{"percentage": 120, "value": True}]}),
        ("POST", "/api/flags", {"name": "n", "kill_switch": True}),  # no routes
        ("POST", "/api/flags", {"name": "n", "surprise": 1}),
        ("PUT", "/api/flags/other", {"name": "n"}),
        ("POST", "/api/flags/evaluate", {"flags": ["nope"]}),
        ("POST", "/api/flags/evaluate", {"context": {"who": "x"}}),
        ("POST", "/api/flags/missing/enable", None),
    ]
    for method, path, body in cases:
        r = await deck.call(method, path, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.text)
        assert_error(r, r.status_code)
    r = await deck.call("POST", "/api/flags", json={"name": "n", "routes": ["no-such-route"]}, who="blue-dev")
    assert_error(r, 404, "route_not_found")


async def test_changing_a_flag_needs_an_admin_or_the_routes_owner(deck: FlagDeck) -> None:
    # support is team blue's route; ops names no team (admins only); a flag without routes is admins' only.
    assert (
        await deck.call("POST", "/api/flags", json=flag("blue-f", routes=["support"]), who="blue-dev")
    ).status_code == 201
    assert_error(await deck.call("POST", "/api/flags/blue-f/disable", who="red-dev"), 403, "not_route_owner")
    assert_error(await deck.call("POST", "/api/flags", json=flag("ops-f", routes=["ops"]), who="blue-dev"), 403)
    assert_error(await deck.call("POST", "/api/flags", json=flag("free"), who="blue-dev"), 403, "not_route_owner")
    assert_error(await deck.call("POST", "/api/flags", json=flag("free"), who="viewer"), 403)
    assert_error(await deck.call("POST", "/api/flags", json=flag("free"), who="blue-app"), 403)
    # Moving a flag onto a route one does not own is refused too (its routes before and after count).
    moved = await deck.call("PUT", "/api/flags/blue-f", json=flag("blue-f", routes=["support", "ops"]), who="blue-dev")
    assert_error(moved, 403, "not_route_owner")
    assert (await deck.call("POST", "/api/flags", json=flag("ops-f", routes=["ops"]))).status_code == 201
    assert (await deck.call("POST", "/api/flags/blue-f/disable", who="blue-dev")).json()["spec"]["enabled"] is False


async def test_evaluate_explains_targeting(deck: FlagDeck) -> None:
    spec = flag(
        "tone",
        type="string",
        value="warm",
        default="plain",
        rules=[
            {"teams": ["team_red"], "value": "formal"},
            {"headers": {"x-beta": "1"}, "value": "terse"},
            {"users": ["ada"], "percentage": 100, "value": "terse"},
        ],
    )
    assert (await deck.call("POST", "/api/flags", json=spec)).status_code == 201

    async def evaluate(**context: Any) -> dict[str, Any]:
        r = await deck.call("POST", "/api/flags/evaluate", json={"context": context, "flags": ["tone"]}, who="viewer")
        assert r.status_code == 200, r.text
        return dict(r.json()["data"][0])

    assert await evaluate(team_id="team_red", headers={"X-Beta": "1"}) == {
        "name": "tone",
        "value": "formal",
        "reason": "rule",
        "rule": 0,
    }
    assert (await evaluate(headers={"X-Beta": "1"}))["rule"] == 1
    assert (await evaluate(user="ada", key_id="k"))["rule"] == 2
    assert await evaluate(user="bob") == {"name": "tone", "value": "warm", "reason": "fallthrough", "rule": None}
    await deck.call("POST", "/api/flags/tone/disable")
    assert (await evaluate(team_id="team_red"))["reason"] == "disabled"


async def test_a_flip_changes_the_next_request_route_and_params(deck: FlagDeck) -> None:
    assert (await deck.answer(model="support")).startswith("support-v1 t=None")
    await deck.call("POST", "/api/flags", json=flag("support-v2", routes=["support"], enabled=False))
    assert (await deck.answer(model="support")).startswith("support-v1")
    await deck.call("POST", "/api/flags/support-v2/enable")
    assert (await deck.answer(model="support")).startswith("support-v2")
    trace = deck.sink.records[-1]
    assert trace.metadata["flags"] == {"support-v2": True} and trace.metadata["flag_branch"] == "support-v2"
    assert trace.route == "support-next"

    # A string flag picks parameters; the caller's own parameters win.
    await deck.call("POST", "/api/flags/support-v2/disable")
    tone = flag(
        "tone", type="string", value="plain", default="plain", rules=[{"teams": ["team_blue"], "value": "terse"}]
    )
    await deck.call("POST", "/api/flags", json=tone)
    assert (await deck.answer("blue-app", model="support")).startswith("support-v1 t=0.1")
    assert (await deck.answer("red-app", model="support")).startswith("support-v1 t=None")
    assert (await deck.answer("blue-app", model="support", temperature=0.7)).startswith("support-v1 t=0.7")

    metrics = (await deck.client.get("/metrics")).text
    assert 'lmdeck_flag_evaluations_total{flag="tone",value="terse"} 2.0' in metrics
    assert 'lmdeck_flag_evaluations_total{flag="support-v2",value="true"} 1.0' in metrics


async def test_a_kill_switch_refuses_its_route_at_once_and_restores(deck: FlagDeck) -> None:
    switch = flag("kill.support", kill_switch=True, routes=["support"])
    assert (await deck.call("POST", "/api/flags", json=switch, who="blue-dev")).status_code == 201
    refused = await deck.chat(model="support")
    error = assert_error(refused, 503, "route_killed")
    assert "kill.support" in error["message"] and error["type"] == "service_unavailable"
    assert deck.sink.records[-1].metadata["kill_switch"] == "kill.support"
    assert deck.sink.records[-1].status_code == 503
    assert (await deck.answer(model="ops")).startswith("ops-v1")  # other routes serve on
    await deck.call("POST", "/api/flags/kill.support/disable", who="blue-dev")
    assert (await deck.answer(model="support")).startswith("support-v1")


async def test_alert_actions_disable_a_flag(deck: FlagDeck) -> None:
    await deck.call("POST", "/api/flags", json=flag("support-v2", routes=["support"]))
    assert (await deck.answer(model="support")).startswith("support-v2")
    assert deck.gateway.flags is not None
    record = await deck.gateway.flags.disable_flag("support-v2", "alert:error-rate")
    assert record.spec.enabled is False and record.updated_by == "alert:error-rate"
    assert (await deck.answer(model="support")).startswith("support-v1")
    history = (await deck.call("GET", "/api/flags/support-v2/history")).json()["data"]
    assert history[0]["action"] == "disabled" and history[0]["actor"] == "alert:error-rate"


async def test_prompt_templates_read_flags_and_change_with_them(deck: FlagDeck) -> None:
    # One plain template (rendered in process) and one with logic (rendered in a worker process).
    texts = {
        "plain": "Answer {{ flags.tone }}: {{ q }}",
        "logic": "{% if flags['support-v2'] %}New{% else %}Old{% endif %} desk: {{ q }}",
    }
    for name, text in texts.items():
        created = await deck.call(
            "POST",
            f"/api/registry/prompts/{name}/versions",
            json={"text": text, "variables": {"q": "string"}, "route": "ops"},
        )
        assert created.status_code in (200, 201), created.text
        await deck.call("PUT", f"/api/registry/prompts/{name}/labels/production", json={"version": 1})
    tone = flag(
        "tone", type="string", value="warmly", default="plainly", rules=[{"users": ["ada"], "value": "tersely"}]
    )
    await deck.call("POST", "/api/flags", json=tone)
    await deck.call("POST", "/api/flags", json=flag("support-v2", enabled=False))

    async def rendered(name: str, **extra: Any) -> str:
        answer = await deck.answer(messages=[], prompt={"name": name, "variables": {"q": "why?"}}, **extra)
        return answer.split(": ", 1)[1]

    assert await rendered("plain") == "Answer warmly: why?"
    assert await rendered("plain", user="ada") == "Answer tersely: why?"
    assert deck.sink.records[-1].metadata["flags"] == {"tone": "tersely"}  # only the flags the template read
    assert await rendered("logic") == "Old desk: why?"
    await deck.call("POST", "/api/flags/support-v2/enable")
    assert await rendered("logic") == "New desk: why?"
    # A caller cannot pass `flags` as a variable; a template reading a flag that does not exist is a 400 naming it.
    r = await deck.chat(messages=[], prompt={"name": "plain", "variables": {"q": "x", "flags": {"tone": "loud"}}})
    assert_error(r, 400)
    await deck.call("DELETE", "/api/flags/tone")
    assert (
        "flag tone, which does not exist"
        in assert_error(await deck.chat(messages=[], prompt={"name": "plain", "variables": {"q": "x"}}), 400)["message"]
    )


async def test_a_kill_switch_covers_requests_that_reach_its_route_through_a_prompt(deck: FlagDeck) -> None:
    await deck.call("POST", "/api/registry/prompts/ops-p/versions", json={"text": "hello", "route": "ops"})
    await deck.call("PUT", "/api/registry/prompts/ops-p/labels/production", json={"version": 1})
    await deck.call("POST", "/api/flags", json=flag("kill.ops", kill_switch=True, routes=["ops"]))
    assert_error(await deck.chat(messages=[], prompt={"name": "ops-p"}), 503, "route_killed")
    # A kill switch aimed at one team leaves the others served.
    targeted = flag(
        "kill.ops", kill_switch=True, routes=["ops"], value=False, rules=[{"teams": ["team_red"], "value": True}]
    )
    await deck.call("PUT", "/api/flags/kill.ops", json=targeted)
    assert_error(await deck.chat("red-app", model="ops"), 503, "route_killed")
    assert (await deck.answer("blue-app", model="ops")).startswith("ops-v1")


async def test_another_teams_flag_is_not_readable(deck: FlagDeck) -> None:
    # support is team blue's route: team red neither lists nor reads its flag or history (404, as if absent).
    assert (
        await deck.call("POST", "/api/flags", json=flag("blue-f", routes=["support"]), who="blue-dev")
    ).status_code == 201
    assert (await deck.call("GET", "/api/flags", who="red-dev")).json()["data"] == []
    assert (await deck.call("GET", "/api/flags/blue-f", who="red-dev")).status_code == 404
    assert (await deck.call("GET", "/api/flags/blue-f/history", who="red-dev")).status_code == 404
    assert (await deck.call("GET", "/api/flags/blue-f", who="blue-dev")).status_code == 200
    assert [f["name"] for f in (await deck.call("GET", "/api/flags")).json()["data"]] == ["blue-f"]
