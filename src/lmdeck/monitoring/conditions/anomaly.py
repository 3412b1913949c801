"""Anomaly rules: the metric as a series of ``step_s`` points over ``history_s``, judged by a detector
of the ``lmdeck.anomaly_detectors`` registry (:mod:`lmdeck.monitoring.anomaly`).

Only whole steps are read (the step still filling at ``now`` is left out), so the newest point the
detector judges is complete. The detector is built once per rule spec and reused.
"""

from __future__ import annotations

import math

from lmdeck.monitoring.anomaly.base import Detector, DetectorError, DetectorRegistry, Series
from lmdeck.monitoring.conditions.base import ConditionError, Reading, group_label
from lmdeck.protocol.alerts import AlertRuleSpec
from lmdeck.tracing.signal_metrics import metric_value, needs_sketches
from lmdeck.tracing.signals import SignalError, Signals


class AnomalyCondition:
    """The ``anomaly`` rule kind."""

    def __init__(self, detectors: DetectorRegistry) -> None:
        self.detectors = detectors
        self._built: dict[str, tuple[str, Detector]] = {}

    def detector(self, rule: AlertRuleSpec) -> Detector:
        """The rule's detector (built on first use and again when the rule's anomaly spec changes)."""
        spec = rule.anomaly
        assert spec is not None  # filled by the rule's validator
        fingerprint = spec.model_dump_json()
        cached = self._built.get(rule.name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        try:
            detector = self.detectors.create(spec.detector, sensitivity=spec.sensitivity, options=spec.options)
        except DetectorError as exc:
            raise ConditionError(f"anomaly.detector: {exc}") from None
        self._built[rule.name] = (fingerprint, detector)
        return detector

    def read(self, signals: Signals, rule: AlertRuleSpec, now: float) -> list[Reading]:
        spec = rule.anomaly
        assert spec is not None
        signal = rule.signal
        detector = self.detector(rule)
        until = math.floor(now / spec.step_s) * spec.step_s
        try:
            rows = signals.series(
                step=spec.step_s,
                by=signal.by,
                since=until - spec.history_s,
                until=until,
                where=signal.where,
                quantiles=needs_sketches(signal.metric),
            )
        except SignalError as exc:
            raise ConditionError(f"signal.{exc.param}: {exc.detail}") from None
        groups: dict[str, tuple[dict[str, object], list[float], list[float]]] = {}
        for totals in rows:
            if totals.requests < signal.min_requests:
                continue
            value = metric_value(totals, signal.metric, spec.step_s)
            if value is None or totals.bucket is None:
                continue
            key = repr(sorted(totals.group.items()))
            _, times, values = groups.setdefault(key, (totals.group, [], []))
            times.append(float(totals.bucket))
            values.append(value)
        readings = []
        for group, times, values in groups.values():
            if not times or times[-1] != until - spec.step_s:
                continue  # no traffic in the newest whole step: nothing to judge now
            finding = detector.evaluate(Series(step=spec.step_s, times=times, values=values))
            band = ""
            if finding.lower is not None or finding.upper is not None:
                band = f" outside [{_fmt(finding.lower)}, {_fmt(finding.upper)}]"
            summary = (
                f"{signal.metric} {values[-1]:.4g}{band} ({spec.detector}, sensitivity {spec.sensitivity}"
                f"{': ' + finding.reason if finding.reason else ''}){group_label(dict(group))}"
            )
            readings.append(
                Reading(
                    group=dict(group),
                    value=values[-1],
                    active=finding.anomalous,
                    cleared=not finding.anomalous,
                    summary=summary,
                    detail={"finding": finding.to_dict(), "detector": spec.detector},
                )
            )
        return readings


def _fmt(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.4g}"
