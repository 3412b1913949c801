"""An anomaly rule with the built-in ``auto`` detector, end to end over real traces: quiet through a normal
day of a daily cycle, one firing for a spike at a quiet hour that a static threshold would not catch, resolved
when the next hour is normal again."""

from __future__ import annotations

import math

import numpy as np

from lmdeck.db import Database
from lmdeck.monitoring.anomaly.base import load_detectors
from lmdeck.monitoring.notifiers.base import NotifierRegistry
from lmdeck.monitoring.runtime import AlertRuntime
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.alerts import AlertRuleSpec, ChannelSpec
from lmdeck.settings import Settings

from .alerting import T0, Clock, Recorder, traffic

HOUR = 3600
DAYS = 5


def hourly_requests(seed: int) -> list[int]:
    """Requests per hour over ``DAYS`` days: a daily cycle from ~20 at night to ~80 in the afternoon."""
    rng = np.random.default_rng(seed)
    hours = np.arange(DAYS * 24)
    level = 20 + 60 * np.exp(-0.5 * (((hours % 24) - 14) / 3.5) ** 2)
    return [int(x) for x in rng.poisson(level)]


async def test_auto_fires_once_on_a_quiet_hour_spike_and_resolves(database: Database) -> None:
    recorder = Recorder()
    notifiers = NotifierRegistry()
    notifiers.add("recorder", lambda spec, resolve: recorder)
    settings = Settings.model_validate({"alerts": {"evaluation_interval_s": None}})
    runtime = AlertRuntime.build(
        settings, database, audit=AuditLog(database), notifiers=notifiers, detectors=load_detectors(), clock=Clock()
    )
    runtime.config.put_channel(ChannelSpec(name="rec", type="recorder"), actor="test")
    rule = AlertRuleSpec.model_validate(
        {
            "name": "chat-traffic-anomaly",
            "kind": "anomaly",
            "signal": {"metric": "requests", "where": {"route": "chat"}},
            "anomaly": {"step_s": HOUR, "history_s": DAYS * 86400, "options": {"direction": "up"}},
            "channels": ["rec"],
        }
    )
    assert rule.anomaly is not None and rule.anomaly.detector == "auto"
    runtime.config.put_rule(rule, actor="test")
    start = T0 - math.fmod(T0, 86400)  # midnight UTC, so hours of the day line up with the cycle
    counts = hourly_requests(seed=11)
    spike_hour = (DAYS - 1) * 24 + 3  # 03:00 on the last day
    counts[spike_hour] = 75  # an afternoon's traffic at 03:00
    for hour, count in enumerate(counts[: spike_hour + 2]):
        traffic(database, start + hour * HOUR, ok=count)

    quiet_day = range((DAYS - 2) * 24, spike_hour)  # each hour judged on the day and a half before the spike
    for hour in quiet_day:
        report = await runtime.run_once(start + (hour + 1) * HOUR)
        assert not report.errors and report.fired == [], (hour, report)
    fired = (await runtime.run_once(start + (spike_hour + 1) * HOUR)).fired
    assert len(fired) == 1
    finding = fired[0][0].evidence["reading"]["finding"]
    assert finding["detail"]["method"] == "seasonal" and finding["detail"]["profile"] == "hour_of_day"
    assert finding["value"] == 75 and finding["expected"] < 40 and finding["upper"] < 75
    assert max(counts[:spike_hour]) > 75  # a static threshold above every past hour would not have fired
    resolved = (await runtime.run_once(start + (spike_hour + 2) * HOUR)).resolved
    assert len(resolved) == 1
    assert recorder.events() == ["firing", "resolved"]
