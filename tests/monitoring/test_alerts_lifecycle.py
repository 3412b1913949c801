"""Alert lifecycle over synthetic traces, evaluated at synthetic times: fire once, hysteresis, ``for``,
silences, acknowledgement, grouping, evidence and the audit of rule changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lmdeck.db import Database
from lmdeck.protocol.alerts import AlertRuleSpec, SilenceSpec

from .alerting import T0, Clock, Recorder, build_runtime, traffic


def error_rule(**changes: object) -> AlertRuleSpec:
    spec = {
        "name": "chat-errors",
        "signal": {"metric": "error_rate", "window_s": 300, "where": {"route": "chat"}, "by": ["target"]},
        "op": ">",
        "threshold": 0.3,
        "clear_threshold": 0.1,
        "channels": ["rec"],
        "severity": "critical",
    }
    spec.update(changes)
    return AlertRuleSpec.model_validate(spec)


async def test_an_incident_notifies_once_then_resolves_once_past_the_hysteresis(database: Database) -> None:
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock)
    runtime.config.put_rule(error_rule(), actor="test")
    traffic(database, T0, ok=5, failed=5)

    first = await runtime.run_once(T0 + 10)
    assert len(first.fired) == 1
    for later in (T0 + 20, T0 + 30, T0 + 40):
        report = await runtime.run_once(later)
        assert not report.fired and not report.resolved
    assert recorder.events() == ["firing"]
    incident = runtime.incidents.find()[0]
    assert incident.state == "firing" and incident.labels["target"] == "fake:a" and incident.value == 0.5

    traffic(database, T0 + 50, ok=10)  # 5 / 20 = 0.25: under the threshold, above the clear threshold
    report = await runtime.run_once(T0 + 60)
    assert not report.resolved and recorder.events() == ["firing"]
    traffic(database, T0 + 70, ok=40)  # 5 / 60 < 0.1
    report = await runtime.run_once(T0 + 80)
    assert [i.id for i in report.resolved] == [incident.id]
    assert recorder.events() == ["firing", "resolved"]
    assert recorder.sent[0].id != recorder.sent[1].id

    stored = runtime.incidents.get(incident.id)
    assert stored is not None and stored.state == "resolved" and stored.resolved_at == T0 + 80
    points = stored.evidence["series"]["points"] if stored.evidence else []
    assert points == [[T0, 0.25], [T0 + 60, 0.0]]  # per minute: 5 of 20, then 0 of 40
    assert [e["event"] for e in runtime.incidents.events(incident.id)] == ["pending", "firing", "resolved"]
    # A new failure after the resolution is a new incident with its own notification.
    traffic(database, T0 + 90, failed=60)
    assert len((await runtime.run_once(T0 + 100)).fired) == 1
    assert recorder.events() == ["firing", "resolved", "firing"]


async def test_for_keeps_an_alert_pending_and_a_short_blip_never_fires(database: Database) -> None:
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock)
    runtime.config.put_rule(error_rule(for_s=120), actor="test")
    traffic(database, T0, failed=5)
    await runtime.run_once(T0 + 10)
    assert runtime.incidents.find(include_pending=True)[0].state == "pending"
    assert runtime.incidents.find() == []  # pending alerts are not listed by default
    traffic(database, T0 + 20, ok=100)  # the blip is over before `for` elapsed
    await runtime.run_once(T0 + 60)
    assert runtime.incidents.find(include_pending=True) == []

    traffic(database, T0 + 400, failed=10)
    await runtime.run_once(T0 + 410)
    assert (await runtime.run_once(T0 + 500)).fired == []
    fired = (await runtime.run_once(T0 + 530)).fired
    assert len(fired) == 1 and fired[0][0].started_at == T0 + 410
    assert recorder.events() == ["firing"]


async def test_a_silence_mutes_matching_alerts_until_it_expires(database: Database) -> None:
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock)
    runtime.config.put_rule(error_rule(), actor="test")
    ends = datetime.fromtimestamp(T0 + 100, UTC)
    silence = runtime.config.add_silence(SilenceSpec(matchers={"target": "fake:a"}, ends_at=ends), actor="test")
    traffic(database, T0, failed=5)
    traffic(database, T0, failed=5, target="fake:b")
    await runtime.run_once(T0 + 10)
    by_target = {i.labels["target"]: i for i in runtime.incidents.find()}
    assert by_target["fake:a"].silenced and not by_target["fake:b"].silenced
    assert [n.incident["labels"]["target"] for n in recorder.sent] == ["fake:b"]
    traffic(database, T0 + 20, ok=100)
    traffic(database, T0 + 20, ok=100, target="fake:b")
    await runtime.run_once(T0 + 30)
    assert recorder.events() == ["firing", "resolved"]  # the silenced one resolves quietly too
    # After the silence expires, a matching alert notifies again.
    clock.now = T0 + 200
    assert runtime.config.active_silences(T0 + 200) == []
    assert [s.id for s in runtime.config.silences(include_expired=True)] == [silence.id]
    traffic(database, T0 + 300, failed=50)
    await runtime.run_once(T0 + 310)
    assert recorder.events() == ["firing", "resolved", "firing"]


async def test_acknowledged_alerts_still_resolve_and_tell_the_channels(database: Database) -> None:
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock)
    runtime.config.put_rule(error_rule(), actor="test")
    traffic(database, T0, failed=5)
    await runtime.run_once(T0 + 10)
    incident = runtime.incidents.find()[0]
    acked = runtime.incidents.acknowledge(incident.id, "key:ops", T0 + 15, "looking")
    assert acked is not None and acked.state == "acknowledged" and acked.acknowledged_by == "key:ops"
    with pytest.raises(ValueError, match="only a firing alert"):
        runtime.incidents.acknowledge(incident.id, "key:ops", T0 + 16)
    traffic(database, T0 + 20, ok=100)
    await runtime.run_once(T0 + 30)
    assert recorder.events() == ["firing", "resolved"]
    events = [e["event"] for e in runtime.incidents.events(incident.id)]
    assert events == ["pending", "firing", "acknowledged", "resolved"]


async def test_rule_changes_are_audited_and_a_deleted_rule_resolves_its_alerts(database: Database) -> None:
    recorder, clock = Recorder(), Clock()
    runtime = build_runtime(database, recorder, clock)
    assert runtime.config.put_rule(error_rule(), actor="key:admin")
    assert not runtime.config.put_rule(error_rule(), actor="key:admin")  # unchanged: no write, no audit entry
    runtime.config.put_rule(error_rule(threshold=0.4), actor="key:admin")
    traffic(database, T0, failed=5)
    await runtime.run_once(T0 + 10)
    assert runtime.config.delete_rule("chat-errors", actor="key:admin")
    report = await runtime.run_once(T0 + 20)
    assert [i.rule for i in report.resolved] == ["chat-errors"]
    assert recorder.events() == ["firing"]  # retired quietly
    assert runtime.audit is not None
    actions = [(e.action, e.target) for e in runtime.audit.entries(target="chat-errors")]
    assert actions == [
        ("alerts.rule.create", "chat-errors"),
        ("alerts.rule.update", "chat-errors"),
        ("alerts.rule.delete", "chat-errors"),
    ]
    assert runtime.audit.verify().to_dict()["ok"]
