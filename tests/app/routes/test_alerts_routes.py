"""``/api/alerts`` in process: rules, channels and silences through the API and ``apply``, refusals naming the
fix, roles, acknowledgement, evaluation, channel tests and export."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink
from lmdeck.tracing.sql_store import SQLTraceStore

ADMIN_KEY = "sk-lmdeck-alerts-Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0X"
ADMIN_ENV = "LMDECK_TEST_ALERTS_ADMIN_KEY"

RULE = {
    "name": "chat-errors",
    "signal": {"metric": "error_rate", "window_s": 300, "where": {"route": "chat"}},
    "threshold": 0.3,
    "channels": ["hook"],
}
#: Nothing listens on port 9 (discard): deliveries to it fail fast.
HOOK = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}


@pytest.fixture
async def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "alerts": {"evaluation_interval_s": None, "max_attempts": 1},
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    async with in_process_client(create_app(settings, gateway=gateway), timeout=30.0) as client:
        client.headers["authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


async def test_rules_and_channels_through_apply_plan_then_apply_then_prune(http: httpx.AsyncClient) -> None:
    declared = {"rules": [RULE], "channels": [HOOK]}
    plan = (await http.post("/api/alerts/apply", json={**declared, "dry_run": True})).json()
    assert plan["changes"] == ["create rule chat-errors", "create channel hook"]
    assert (await http.get("/api/alerts/rules")).json()["data"] == []
    applied = (await http.post("/api/alerts/apply", json=declared)).json()
    assert applied["summary"] == "2 change(s)"
    assert (await http.post("/api/alerts/apply", json=declared)).json()["summary"] == "no changes"
    rules = (await http.get("/api/alerts/rules")).json()["data"]
    assert [r["name"] for r in rules] == ["chat-errors"] and rules[0]["error"] is None
    pruned = (await http.post("/api/alerts/apply", json={"channels": [HOOK], "prune": True})).json()
    assert pruned["changes"] == ["delete rule chat-errors"]
    audit = (await http.get("/api/audit", params={"target": "chat-errors"})).json()["data"]
    assert [e["action"] for e in audit] == ["alerts.rule.create", "alerts.rule.delete"]


async def test_bad_rules_and_channels_are_refused_naming_the_fix(http: httpx.AsyncClient) -> None:
    response = await http.put("/api/alerts/rules/chat-errors", json=RULE)
    assert response.status_code == 400 and "unknown channel 'hook'" in response.json()["error"]["message"]
    response = await http.put("/api/alerts/channels/pager", json={"name": "pager", "type": "pagerduty"})
    assert response.status_code == 400 and "unknown channel type 'pagerduty'" in response.json()["error"]["message"]
    response = await http.put("/api/alerts/channels/hook", json={"name": "hook", "type": "webhook"})
    assert response.status_code == 400 and "needs `url`" in response.json()["error"]["message"]
    secret = {**HOOK, "secret": {"$env": "LMDECK_TEST_ALERTS_UNSET"}}
    response = await http.put("/api/alerts/channels/hook", json=secret)
    assert response.status_code == 400 and "LMDECK_TEST_ALERTS_UNSET" in response.json()["error"]["message"]
    response = await http.put("/api/alerts/channels/hook", json={**HOOK, "secret": "inline"})
    assert response.status_code == 400
    for url in ("ftp://files.example/x", "http://", "hooks.example/x", "http://a b.example/"):
        response = await http.put("/api/alerts/channels/hook", json={**HOOK, "url": url})
        assert response.status_code == 400, url
    assert (await http.post("/api/alerts/evaluate", json={"at": 1e300})).status_code == 400
    backwards = {"matchers": {"rule": "x"}, "starts_at": "2000-01-01T00:00:00Z", "ends_at": 0}
    for dry_run in (True, False):
        response = await http.post("/api/alerts/apply", json={"silences": [backwards], "dry_run": dry_run})
        assert response.status_code == 400 and "after starts_at" in response.json()["error"]["message"]
    # Without starts_at, a silence starts when stored: one that already ended is refused at apply too.
    response = await http.post("/api/alerts/apply", json={"silences": [{"matchers": {"rule": "x"}, "ends_at": 0}]})
    assert response.status_code == 400 and "ends after it starts" in response.json()["error"]["message"]
    assert (await http.put("/api/alerts/channels/hook", json=HOOK)).status_code == 200
    bad_metric = {**RULE, "signal": {"metric": "vibes"}}
    response = await http.put("/api/alerts/rules/chat-errors", json=bad_metric)
    assert response.status_code == 400 and "unknown metric 'vibes'" in response.json()["error"]["message"]
    no_threshold = {k: v for k, v in RULE.items() if k != "threshold"}
    assert (await http.put("/api/alerts/rules/chat-errors", json=no_threshold)).status_code == 400
    bad_action = {**RULE, "actions": [{"type": "reboot"}]}
    response = await http.put("/api/alerts/rules/chat-errors", json=bad_action)
    assert response.status_code == 400 and "unknown action type 'reboot'" in response.json()["error"]["message"]
    anomaly = {**RULE, "kind": "anomaly", "anomaly": {"detector": "nope"}}
    response = await http.put("/api/alerts/rules/chat-errors", json=anomaly)
    assert response.status_code == 400 and "unknown anomaly detector 'nope'" in response.json()["error"]["message"]
    response = await http.put("/api/alerts/rules/other", json=RULE)
    assert response.status_code == 400 and "make them agree" in response.json()["error"]["message"]
    assert (await http.get("/api/alerts/nope")).status_code == 404
    assert (await http.post("/api/alerts/nope/ack", json={})).status_code == 404


async def test_viewers_read_and_only_admins_change_rules(http: httpx.AsyncClient) -> None:
    viewer = (await http.post("/api/keys", json={"name": "alerts viewer", "role": "viewer"})).json()["key"]
    headers = {"authorization": f"Bearer {viewer}"}
    assert (await http.get("/api/alerts", headers=headers)).status_code == 200
    assert (await http.get("/api/alerts/rules", headers=headers)).status_code == 200
    assert (await http.put("/api/alerts/channels/hook", json=HOOK, headers=headers)).status_code == 403
    assert (await http.post("/api/alerts/evaluate", json={}, headers=headers)).status_code == 403
    assert (await http.get("/api/alerts", headers={"authorization": "Bearer sk-lmdeck-nope"})).status_code == 401


async def test_evaluate_ack_silence_dead_letters_and_export(http: httpx.AsyncClient) -> None:
    await http.post("/api/alerts/apply", json={"rules": [RULE], "channels": [HOOK]})
    app = http._transport.app  # type: ignore[attr-defined]
    now = time.time()
    records = [TraceRecord(created_at=now - 5, route="chat", target="fake:a", status_code=502) for _ in range(5)]
    SQLTraceStore(app.state.gateway.db).insert(records)

    report = (await http.post("/api/alerts/evaluate", json={"at": now})).json()
    assert len(report["fired"]) == 1 and report["errors"] == {}
    alert_id = report["fired"][0]
    alert = (await http.get(f"/api/alerts/{alert_id}")).json()
    assert alert["state"] == "firing" and [e["event"] for e in alert["history"]] == ["pending", "firing"]
    assert [a["id"] for a in (await http.get("/api/alerts", params={"state": "open"})).json()["data"]] == [alert_id]
    assert (await http.get("/api/alerts", params={"state": "bogus"})).status_code == 400
    # The receiver is down and one attempt is allowed: the notification is dead-lettered, and can be retried.
    dead = (await http.get("/api/alerts/dead-letters")).json()["data"]
    assert [d["channel"] for d in dead] == ["hook"] and dead[0]["status"] == "dead"
    assert (await http.post(f"/api/alerts/dead-letters/{dead[0]['id']}/retry")).json() == {"requeued": 1}

    acked = (await http.post(f"/api/alerts/{alert_id}/ack", json={"comment": "on it"})).json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"].startswith("key:")
    assert (await http.post(f"/api/alerts/{alert_id}/ack", json={})).status_code == 409

    ends = datetime.fromtimestamp(now + 3600, UTC).isoformat()
    silence = (await http.post("/api/alerts/silences", json={"matchers": {"rule": "x"}, "ends_at": ends})).json()
    assert [s["id"] for s in (await http.get("/api/alerts/silences")).json()["data"]] == [silence["id"]]
    past = datetime.fromtimestamp(now - 60, UTC).isoformat()
    assert (
        await http.post("/api/alerts/silences", json={"matchers": {"rule": "x"}, "ends_at": past})
    ).status_code == 400
    assert (await http.delete(f"/api/alerts/silences/{silence['id']}")).status_code == 204
    assert (await http.get("/api/alerts/silences")).json()["data"] == []

    tested = (await http.post("/api/alerts/test", json={"channel": "hook"})).json()
    assert tested["delivered"] is False and "127.0.0.1:9" in tested["error"]
    exported = yaml.safe_load((await http.get("/api/alerts/export/prometheus")).text)
    assert [r["alert"] for r in exported["groups"][0]["rules"]] == ["chat-errors"]
    assert (await http.get("/api/alerts/export/grafana")).json()["uid"] == "lmdeck-gateway"


async def test_flag_and_release_actions_go_through_delivery_and_are_audited(http: httpx.AsyncClient) -> None:
    created = await http.post("/api/flags", json={"name": "new-reply", "value": True, "default": False})
    assert created.status_code == 201, created.text
    rule = {**RULE, "actions": [{"type": "disable_flag", "flag": "new-reply"}, {"type": "rollback_release"}]}
    await http.post("/api/alerts/apply", json={"rules": [rule], "channels": [HOOK]})
    app = http._transport.app  # type: ignore[attr-defined]
    now = time.time()
    records = [TraceRecord(created_at=now - 5, route="chat", target="fake:a", status_code=502) for _ in range(5)]
    SQLTraceStore(app.state.gateway.db).insert(records)

    alert_id = (await http.post("/api/alerts/evaluate", json={"at": now})).json()["fired"][0]
    assert (await http.get("/api/flags/new-reply")).json()["spec"]["enabled"] is False
    history = (await http.get(f"/api/alerts/{alert_id}")).json()["history"]
    outcomes = [e["detail"] for e in history if e["event"] == "action"]
    assert outcomes[0] == {"type": "disable_flag", "ok": True, "result": "flag 'new-reply' disabled"}
    assert not outcomes[1]["ok"] and "rollback_release needs `release`" in outcomes[1]["error"]
    audit = (await http.get("/api/audit", params={"actor": "alert:chat-errors"})).json()["data"]
    # The flag's own audit entry names the alert as the actor, then the alert's record of each action.
    actions = [e["action"] for e in audit]
    assert actions == ["flag.disabled", "alerts.action.disable_flag", "alerts.action.rollback_release"]


async def test_a_developer_silences_only_its_own_teams_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    target = {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "alerts": {"evaluation_interval_s": None},
            "routes": [
                {"name": "alpha-chat", "team": "alpha", "targets": [target]},
                {"name": "beta-chat", "team": "beta", "targets": [target]},
            ],
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    async with in_process_client(create_app(settings, gateway=gateway), timeout=30.0) as http:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        teams = {}
        for team in ("alpha", "beta"):
            teams[team] = (await http.post("/api/teams", json={"name": team}, headers=admin)).json()["id"]
        made = await http.post(
            "/api/keys", json={"name": "beta dev", "role": "developer", "team_id": "beta"}, headers=admin
        )
        beta = {"authorization": f"Bearer {made.json()['key']}"}
        ends = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()

        async def silence(matchers: dict[str, str], who: dict[str, str], **extra: str) -> httpx.Response:
            return await http.post(
                "/api/alerts/silences", json={"matchers": matchers, "ends_at": ends, **extra}, headers=who
            )

        # Muting every critical alert, or another team's route, is for admins.
        for matchers in ({"severity": "critical"}, {"route": "alpha-chat"}, {"team_id": teams["alpha"]}):
            refused = await silence(matchers, beta)
            assert refused.status_code == 403, (matchers, refused.text)
            assert refused.json()["error"]["param"] == "matchers"
        assert (await silence({"route": "beta-chat", "severity": "critical"}, beta)).status_code == 201
        assert (await silence({"team_id": teams["beta"]}, beta)).status_code == 201
        # An admin's silence is neither lifted nor replaced by a developer of another team.
        kept = (await silence({"route": "alpha-chat"}, admin, id="alpha-maintenance")).json()
        assert (await http.delete(f"/api/alerts/silences/{kept['id']}", headers=beta)).status_code == 403
        assert (await silence({"route": "beta-chat"}, beta, id="alpha-maintenance")).status_code == 403
        listed = (await http.get("/api/alerts/silences", headers=admin)).json()["data"]
        assert {"route": "alpha-chat"} in [s["matchers"] for s in listed]


async def test_a_channel_keeps_a_tokened_url_and_header_as_secret_references(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    token_url = "http://127.0.0.1:9/hook/T0KEN-IN-PATH"
    for name, value in (("hook-url", token_url), ("hook-auth", "Bearer T0KEN-IN-HEADER")):
        assert (await http.put(f"/api/secrets/{name}", json={"value": value})).status_code == 200
    channel = {
        "name": "hook",
        "type": "webhook",
        "url": {"$secret": "hook-url"},
        "headers": {"authorization": {"$secret": "hook-auth"}},
    }
    put = await http.put("/api/alerts/channels/hook", json=channel)
    assert put.status_code == 200, put.text
    listed = await http.get("/api/alerts/channels")
    tested = await http.post("/api/alerts/test", json={"channel": "hook"})
    for shown in (put.text, listed.text, tested.text):
        assert "T0KEN" not in shown, shown
    assert listed.json()["data"][0]["url"]["$secret"] == "hook-url"
    assert tested.json()["delivered"] is False and "127.0.0.1:9" in tested.json()["error"]
    # The notifier posts to the URL and header the references name; neither is stored in the clear.
    app = http._transport.app  # type: ignore[attr-defined]
    spec = app.state.gateway.alerts.config.channel("hook")
    notifier = app.state.gateway.alerts.dispatcher.notifier(spec)
    assert (notifier.url, notifier.headers["authorization"]) == (token_url, "Bearer T0KEN-IN-HEADER")
    assert b"T0KEN" not in (tmp_path / "lmdeck.db").read_bytes()


async def test_a_team_sees_and_acknowledges_only_its_own_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    target = {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "alerts": {"evaluation_interval_s": None},
            "routes": [
                {"name": "alpha-chat", "team": "alpha", "targets": [target]},
                {"name": "beta-chat", "team": "beta", "targets": [target]},
            ],
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    async with in_process_client(create_app(settings, gateway=gateway), timeout=30.0) as http:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        keys = {}
        for team in ("alpha", "beta"):
            assert (await http.post("/api/teams", json={"name": team}, headers=admin)).status_code == 201
            made = await http.post(
                "/api/keys", json={"name": f"{team} dev", "role": "developer", "team_id": team}, headers=admin
            )
            keys[team] = {"authorization": f"Bearer {made.json()['key']}"}
        rule = {
            "name": "alpha-errors",
            "signal": {"metric": "error_rate", "window_s": 300, "where": {"route": "alpha-chat"}},
            "threshold": 0.3,
            "labels": {"route": "alpha-chat"},
        }
        assert (await http.put("/api/alerts/rules/alpha-errors", json=rule, headers=admin)).status_code == 200
        now = time.time()
        records = [
            TraceRecord(created_at=now - 5, route="alpha-chat", target="fake:a", status_code=502) for _ in range(5)
        ]
        SQLTraceStore(http._transport.app.state.gateway.db).insert(records)  # type: ignore[attr-defined]
        alert_id = (await http.post("/api/alerts/evaluate", json={"at": now}, headers=admin)).json()["fired"][0]

        # Another team neither sees nor acknowledges it: a 404, as for an alert that does not exist.
        beta = keys["beta"]
        assert (await http.get("/api/alerts", headers=beta)).json()["data"] == []
        assert (await http.get(f"/api/alerts/{alert_id}", headers=beta)).status_code == 404
        refused = await http.post(f"/api/alerts/{alert_id}/ack", json={}, headers=beta)
        assert refused.status_code == 404 and refused.json()["error"]["param"] == "alert_id"
        assert (await http.get(f"/api/alerts/{alert_id}", headers=admin)).json()["state"] == "firing"
        # The owning team and the admins do.
        alpha = keys["alpha"]
        assert [a["id"] for a in (await http.get("/api/alerts", headers=alpha)).json()["data"]] == [alert_id]
        acked = await http.post(f"/api/alerts/{alert_id}/ack", json={"comment": "mine"}, headers=alpha)
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        assert [a["id"] for a in (await http.get("/api/alerts", headers=admin)).json()["data"]] == [alert_id]
        # Rules, silences and the Prometheus export of another team are not shown either.
        ends = datetime.fromtimestamp(now + 3600, UTC).isoformat()
        silence = {"matchers": {"route": "alpha-chat"}, "ends_at": ends}
        assert (await http.post("/api/alerts/silences", json=silence, headers=alpha)).status_code == 201
        for who, seen in ((beta, []), (alpha, ["alpha-errors"]), (admin, ["alpha-errors"])):
            assert [r["name"] for r in (await http.get("/api/alerts/rules", headers=who)).json()["data"]] == seen
            exported = yaml.safe_load((await http.get("/api/alerts/export/prometheus", headers=who)).text)
            assert [r["alert"] for g in exported["groups"] for r in g["rules"]] == seen
            silences = (await http.get("/api/alerts/silences", headers=who)).json()["data"]
            assert [s["matchers"] for s in silences] == ([{"route": "alpha-chat"}] if seen else [])
        assert (await http.get("/api/alerts/rules/alpha-errors", headers=beta)).status_code == 404
        assert (await http.get("/api/alerts/rules/alpha-errors", headers=alpha)).status_code == 200
