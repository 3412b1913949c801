"""Notification delivery (retries with backoff, dead letters), the protocols' bodies, actions and export."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import yaml

from lmdeck.db import Database
from lmdeck.gateway.routing.breaker import CircuitBreakers
from lmdeck.monitoring.actions import ActionContext
from lmdeck.monitoring.actions.base import ActionError
from lmdeck.monitoring.actions.weights import shifted
from lmdeck.monitoring.export import grafana_dashboard, prometheus_rules
from lmdeck.monitoring.notifiers.alertmanager import alertmanager_body
from lmdeck.monitoring.notifiers.base import Notification, load_notifiers
from lmdeck.monitoring.notifiers.slack import slack_body
from lmdeck.monitoring.notifiers.smtp import EmailNotifier
from lmdeck.monitoring.notifiers.webhook import signature, verify
from lmdeck.protocol.alerts import AlertRuleSpec, ChannelSpec
from lmdeck.settings import BreakerSettings, RouteConfig

from .alerting import T0, Clock, Recorder, build_runtime, traffic

RULE = {
    "name": "chat-errors",
    "signal": {"metric": "error_rate", "window_s": 300, "where": {"route": "chat"}, "by": ["target"]},
    "threshold": 0.3,
    "channels": ["rec"],
}


async def test_a_failed_send_is_retried_with_backoff_then_dead_lettered(database: Database) -> None:
    recorder, clock = Recorder(failures=10), Clock()
    runtime = build_runtime(database, recorder, clock, max_attempts=3, backoff_base_s=10)
    runtime.config.put_rule(AlertRuleSpec.model_validate(RULE), actor="test")
    traffic(database, T0, failed=5)
    clock.now = T0 + 10
    await runtime.run_once(T0 + 10)
    assert recorder.attempts == 1
    item = runtime.incidents.outbox()[0]
    assert (item.status, item.attempts, item.next_attempt_at) == ("pending", 1, T0 + 20)
    assert await runtime.dispatcher.drain(T0 + 15) == 0 and recorder.attempts == 1  # not due yet
    await runtime.dispatcher.drain(T0 + 20)
    assert runtime.incidents.outbox()[0].next_attempt_at == T0 + 40  # 10 s, then 20 s
    await runtime.dispatcher.drain(T0 + 40)
    dead = runtime.incidents.outbox(status="dead")
    assert [d.attempts for d in dead] == [3] and "receiver down" in (dead[0].last_error or "")
    # An operator queues it again once the receiver is back.
    recorder.failures = 0
    assert runtime.incidents.retry_dead([dead[0].id], T0 + 50) == 1
    assert await runtime.dispatcher.drain(T0 + 50) == 1
    assert recorder.events() == ["firing"]


async def test_a_permanent_failure_or_a_missing_channel_goes_straight_to_the_dead_letters(database: Database) -> None:
    recorder, clock = Recorder(failures=1, retryable=False), Clock()
    runtime = build_runtime(database, recorder, clock)
    runtime.config.put_rule(AlertRuleSpec.model_validate({**RULE, "channels": ["rec", "gone"]}), actor="test")
    traffic(database, T0, failed=5)
    await runtime.run_once(T0 + 10)
    dead = {d.channel: d for d in runtime.incidents.outbox(status="dead")}
    assert set(dead) == {"rec", "gone"}
    assert "no notification channel named 'gone'" in (dead["gone"].last_error or "")


def notification(event: str = "firing") -> Notification:
    incident = {
        "id": "alt_1",
        "rule": "chat-errors",
        "state": "firing",
        "severity": "critical",
        "labels": {"rule": "chat-errors", "severity": "critical", "target": "fake:a"},
        "group": {"target": "fake:a"},
        "value": 0.5,
        "summary": "error_rate 0.5 > 0.3",
        "started_at": T0,
        "fired_at": T0,
        "resolved_at": T0 + 60 if event == "resolved" else None,
    }
    return Notification("ntf_1", "ops", event, {"event": event, "incident": incident, "rule": {"name": "chat-errors"}})


def test_webhook_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    header = signature(b"s3cret", 1700000000, body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify(b"s3cret", header, body)
    assert not verify(b"other", header, body) and not verify(b"s3cret", header, body + b" ")


def test_slack_and_alertmanager_bodies() -> None:
    slack = slack_body(notification())
    assert slack["text"].startswith(":rotating_light: [FIRING] chat-errors (target=fake:a)")
    assert slack["blocks"][0]["type"] == "header"
    am = alertmanager_body(notification("resolved"), "ops")
    assert am["version"] == "4" and am["status"] == "resolved" and am["receiver"] == "ops"
    alert = am["alerts"][0]
    assert alert["labels"] == {"alertname": "chat-errors", "severity": "critical", "target": "fake:a"}
    assert alert["startsAt"].endswith("Z") and alert["endsAt"] != "0001-01-01T00:00:00Z"


def test_email_message_names_the_alert() -> None:
    notifier = EmailNotifier("127.0.0.1", 25, "lmdeck@example.com", ["ops@example.com"])
    msg = notifier.message(notification())
    assert msg["Subject"] == "[FIRING] chat-errors (target=fake:a)"
    assert msg["Message-ID"] == "<ntf_1@lmdeck>"
    assert "error_rate 0.5 > 0.3" in msg.get_content()


def test_built_in_channels_register_through_entry_points() -> None:
    registry = load_notifiers()
    assert {"webhook", "slack", "email", "alertmanager"} <= set(registry.names())
    with pytest.raises(ValueError, match="needs `url`"):
        registry.create(ChannelSpec(name="x", type="webhook"), lambda ref: "")
    with pytest.raises(ValueError, match="unknown channel type 'pager'"):
        registry.create(ChannelSpec(name="x", type="pager"), lambda ref: "")


async def test_open_breaker_action_trips_the_alerts_target_and_is_audited(database: Database) -> None:
    breakers = CircuitBreakers(BreakerSettings(reset_timeout=60), clock=time.time)
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock, actions=ActionContext(breakers=lambda: breakers))
    spec = {**RULE, "actions": [{"type": "open_breaker"}, {"type": "rollback_release", "release": "rel_1"}]}
    runtime.config.put_rule(AlertRuleSpec.model_validate(spec), actor="test")
    traffic(database, T0, failed=5)
    traffic(database, T0, ok=5, target="fake:b")
    await runtime.run_once(T0 + 10)
    assert breakers.states() == {"fake:a": "open"}
    incident = runtime.incidents.find()[0]
    actions = [e["detail"] for e in runtime.incidents.events(incident.id) if e["event"] == "action"]
    assert actions[0]["ok"] and "breaker of fake:a opened" in actions[0]["result"]
    assert not actions[1]["ok"] and "no release controller" in actions[1]["error"]
    assert runtime.audit is not None
    audited = [e.action for e in runtime.audit.entries(actor="alert:chat-errors")]
    assert audited == ["alerts.action.open_breaker", "alerts.action.rollback_release"]
    await runtime.run_once(T0 + 20)  # still firing: the action is not run again
    assert len(runtime.audit.entries(actor="alert:chat-errors")) == 2


def test_shifting_a_targets_weight_keeps_the_others_ratios() -> None:
    route = RouteConfig.model_validate(
        {
            "name": "chat",
            "targets": [
                {"provider": "openai", "model": "a", "weight": 2},
                {"provider": "openai", "model": "b", "weight": 1},
                {"provider": "openai", "model": "c", "weight": 3},
            ],
        }
    )
    ids = [t.id for t in route.targets]
    changed = shifted(route, ids[0])
    assert [t.weight for t in changed.targets] == [0.0, 1.5, 4.5]
    with pytest.raises(ActionError, match="has no target"):
        shifted(route, "openai:zzz")


def test_prometheus_export_translates_threshold_and_burn_rate_rules() -> None:
    rules = [
        AlertRuleSpec.model_validate({**RULE, "for_s": 120, "severity": "critical"}),
        AlertRuleSpec.model_validate(
            {"name": "p95", "signal": {"metric": "latency_p95", "where": {"route": "chat"}}, "threshold": 2000}
        ),
        AlertRuleSpec.model_validate({"name": "slo", "kind": "burn_rate", "signal": {"metric": "error_rate"}}),
        AlertRuleSpec.model_validate({"name": "odd", "kind": "anomaly", "signal": {"metric": "requests"}}),
        AlertRuleSpec.model_validate(
            {"name": "by-team", "signal": {"metric": "error_rate", "by": ["team_id"]}, "threshold": 0.1}
        ),
    ]
    text = prometheus_rules(rules)
    assert "# skipped odd: anomaly rules are evaluated by lmdeck itself" in text
    assert "# skipped by-team: by team_id" in text
    exported = {r["alert"]: r for r in yaml.safe_load(text)["groups"][0]["rules"]}
    assert set(exported) == {"chat-errors", "p95", "slo"}
    errors = exported["chat-errors"]
    assert errors["for"] == "120s" and errors["labels"]["severity"] == "critical"
    assert errors["expr"] == (
        '(sum by (target)(rate(lmdeck_requests_total{route="chat",status=~"[45].."}[300s]))) / '
        '(sum by (target)(rate(lmdeck_requests_total{route="chat"}[300s]))) > 0.3'
    )
    assert "histogram_quantile(0.95" in exported["p95"]["expr"]
    assert "> 0.0144 and" in exported["slo"]["expr"]


def test_the_shipped_grafana_dashboard_is_valid_json_with_panels() -> None:
    dashboard = grafana_dashboard()
    assert dashboard["uid"] == "lmdeck-gateway"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert any("lmdeck_requests_total" in e for e in exprs) and len(exprs) >= 8
    json.dumps(dashboard)
