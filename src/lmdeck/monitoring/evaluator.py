"""The alert evaluator: every rule's condition at ``now``, turned into incident transitions.

    evaluator = AlertEvaluator(config, incidents, signals, conditions(load_detectors()))
    report = evaluator.evaluate(now)      # blocking; tests pass synthetic times
    report.fired, report.resolved         # incidents that changed state at this evaluation

Per rule and group, at each evaluation:

- no open incident and the condition holds: a ``pending`` incident (or ``firing`` at once when
  ``for_s`` is 0);
- ``pending`` and the condition still holds ``for_s`` after it started: ``firing``; a notification
  to each of the rule's channels is queued (none while a silence matches the alert's labels) and the
  evidence is kept: the metric's series around the firing point;
- ``pending`` and the condition no longer holds: the incident is dropped (it never fired);
- ``firing`` or ``acknowledged`` and the reading is ``cleared`` (past the hysteresis): ``resolved``, with
  a resolve notification to the channels that were told it fired;
- a group with no reading (too little traffic in the window) keeps its state.

Only transitions write, and a notification is written in the transaction of its transition, so a rule
that stays firing for an hour sends one notification, not one per evaluation. A disabled or deleted
rule's open incidents are resolved quietly.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lmdeck.monitoring.conditions.base import Condition, ConditionError, Reading
from lmdeck.monitoring.incidents import Incident, IncidentStore
from lmdeck.monitoring.store import AlertConfigStore, Silence, new_id
from lmdeck.protocol.alerts import AlertRuleSpec
from lmdeck.tracing.signal_metrics import metric_value, needs_sketches
from lmdeck.tracing.signals import SignalError, Signals

log = logging.getLogger(__name__)

#: Seconds of the metric's series kept as evidence before the firing point (and up to the resolution).
EVIDENCE_BEFORE_S = 1800


@dataclass
class EvaluationReport:
    """What one evaluation changed: incidents that fired or resolved, and rules that failed (name -> error)."""

    at: float
    fired: list[tuple[Incident, AlertRuleSpec]] = field(default_factory=list)
    resolved: list[Incident] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rules: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "rules": self.rules,
            "fired": [i.id for i, _ in self.fired],
            "resolved": [i.id for i in self.resolved],
            "errors": self.errors,
        }


def group_key(group: Mapping[str, Any]) -> str:
    return json.dumps(dict(group), sort_keys=True, default=str)


def labels_of(rule: AlertRuleSpec, group: Mapping[str, Any]) -> dict[str, Any]:
    """An alert's labels: the rule's own, then ``rule``, ``severity`` and its group's dimensions."""
    return {**rule.labels, "rule": rule.name, "severity": rule.severity, **{k: v for k, v in group.items()}}


def notification_payload(incident: Incident, rule: AlertRuleSpec | None, event: str) -> dict[str, Any]:
    """The channel-free body of a notification (each notifier renders it in its own protocol)."""
    return {
        "event": event,
        "incident": incident.to_dict(),
        "rule": {
            "name": incident.rule,
            "kind": rule.kind if rule else None,
            "description": rule.description if rule else "",
            "metric": rule.signal.metric if rule else None,
            "threshold": rule.threshold if rule else None,
        },
    }


class AlertEvaluator:
    """Evaluates every enabled rule at a given time (see the module docs). Blocking: run it in a thread."""

    def __init__(
        self,
        config: AlertConfigStore,
        incidents: IncidentStore,
        signals: Signals,
        kinds: Mapping[str, Condition],
        *,
        on_fired: Callable[[Incident, AlertRuleSpec], None] | None = None,
    ) -> None:
        self.config = config
        self.incidents = incidents
        self.signals = signals
        self.kinds = kinds
        self.on_fired = on_fired
        #: The last error of each rule that could not be evaluated (cleared when it evaluates again).
        self.errors: dict[str, str] = {}

    def evaluate(self, now: float) -> EvaluationReport:
        """Evaluate every rule at ``now`` (epoch seconds); see the module docs."""
        report = EvaluationReport(at=now)
        rules = {r.name: r for r in self.config.rules()}
        silences = self.config.active_silences(now)
        for rule in rules.values():
            if not rule.enabled:
                continue
            report.rules += 1
            try:
                readings = self.kinds[rule.kind].read(self.signals, rule, now)
            except (ConditionError, SignalError) as exc:
                report.errors[rule.name] = self.errors[rule.name] = str(exc)
                log.warning("alert rule %r cannot be evaluated: %s", rule.name, exc)
                continue
            except Exception as exc:  # one rule's failure (a detector's bug) must not stop the others
                log.exception("alert rule %r failed", rule.name)
                report.errors[rule.name] = self.errors[rule.name] = f"{type(exc).__name__}: {exc}"
                continue
            self.errors.pop(rule.name, None)
            self._apply(rule, readings, now, silences, report)
        for name in self.incidents.open_rules():
            rule_now = rules.get(name)
            if rule_now is None or not rule_now.enabled:
                self._retire(name, now, report)
        return report

    # -- transitions -----------------------------------------------------------------------------

    def _apply(
        self,
        rule: AlertRuleSpec,
        readings: list[Reading],
        now: float,
        silences: list[Silence],
        report: EvaluationReport,
    ) -> None:
        open_incidents = self.incidents.open_for_rule(rule.name)
        for reading in readings:
            key = group_key(reading.group)
            incident = open_incidents.get(key)
            if incident is None:
                if not reading.active:
                    continue
                incident = Incident(
                    id=new_id("alt"),
                    rule=rule.name,
                    group_key=key,
                    labels=labels_of(rule, reading.group),
                    state="pending",
                    severity=rule.severity,
                    value=reading.value,
                    started_at=now,
                    summary=reading.summary,
                )
                with self.incidents.db.engine.begin() as conn:
                    self.incidents.insert(conn, incident)
                    self.incidents.event(conn, incident.id, now, "pending", {"value": reading.value})
                if rule.for_s <= 0:
                    self._fire(rule, incident, reading, now, silences, report)
            elif incident.state == "pending":
                if not reading.active:
                    with self.incidents.db.engine.begin() as conn:
                        self.incidents.delete(conn, incident.id)
                elif now - incident.started_at >= rule.for_s:
                    self._fire(rule, incident, reading, now, silences, report)
            elif reading.cleared:
                self._resolve(rule, incident, reading, now, report)
            elif reading.value != incident.value:
                incident.value, incident.summary = reading.value, reading.summary
                with self.incidents.db.engine.begin() as conn:
                    self.incidents.update(conn, incident)

    def _fire(
        self,
        rule: AlertRuleSpec,
        incident: Incident,
        reading: Reading,
        now: float,
        silences: list[Silence],
        report: EvaluationReport,
    ) -> None:
        silence = next((s for s in silences if s.matches(incident.labels)), None)
        incident.state, incident.fired_at = "firing", now
        incident.value, incident.summary = reading.value, reading.summary
        incident.silenced = silence is not None
        incident.notified = silence is None and bool(rule.channels)
        incident.evidence = {
            "reading": reading.detail,
            "series": self._series(rule, reading.group, now - EVIDENCE_BEFORE_S, now),
        }
        with self.incidents.db.engine.begin() as conn:
            self.incidents.update(conn, incident)
            self.incidents.event(conn, incident.id, now, "firing", {"value": reading.value, "summary": reading.summary})
            if silence is not None:
                self.incidents.event(conn, incident.id, now, "silenced", {"silence": silence.id})
            elif rule.channels:
                payload = notification_payload(incident, rule, "firing")
                self.incidents.enqueue(conn, incident.id, rule.channels, "firing", payload, now)
        report.fired.append((incident, rule))
        if self.on_fired is not None:
            self.on_fired(incident, rule)

    def _resolve(
        self, rule: AlertRuleSpec, incident: Incident, reading: Reading, now: float, report: EvaluationReport
    ) -> None:
        incident.state, incident.resolved_at = "resolved", now
        incident.value, incident.summary = reading.value, reading.summary
        evidence = dict(incident.evidence or {})
        evidence["series"] = self._series(rule, reading.group, (incident.fired_at or now) - EVIDENCE_BEFORE_S, now)
        incident.evidence = evidence
        with self.incidents.db.engine.begin() as conn:
            self.incidents.update(conn, incident)
            self.incidents.event(conn, incident.id, now, "resolved", {"value": reading.value})
            if incident.notified:
                payload = notification_payload(incident, rule, "resolved")
                self.incidents.enqueue(conn, incident.id, rule.channels, "resolved", payload, now)
        report.resolved.append(incident)

    def _retire(self, rule_name: str, now: float, report: EvaluationReport) -> None:
        for incident in self.incidents.open_for_rule(rule_name).values():
            with self.incidents.db.engine.begin() as conn:
                if incident.state == "pending":
                    self.incidents.delete(conn, incident.id)
                    continue
                incident.state, incident.resolved_at = "resolved", now
                self.incidents.update(conn, incident)
                self.incidents.event(conn, incident.id, now, "resolved", {"reason": "rule disabled or deleted"})
            report.resolved.append(incident)

    def _series(self, rule: AlertRuleSpec, group: Mapping[str, Any], since: float, until: float) -> dict[str, Any]:
        """The rule's metric per minute (or per anomaly step) over ``[since, until)`` for one group."""
        step = rule.anomaly.step_s if rule.kind == "anomaly" and rule.anomaly is not None else 60
        since = math.floor(since / step) * step
        where = {**rule.signal.where, **group}
        try:
            rows = self.signals.series(
                step=step, since=since, until=until, where=where, quantiles=needs_sketches(rule.signal.metric)
            )
        except SignalError as exc:
            return {"error": str(exc)}
        points = [[row.bucket, metric_value(row, rule.signal.metric, step)] for row in rows]
        return {"metric": rule.signal.metric, "step_s": step, "since": since, "until": until, "points": points}
