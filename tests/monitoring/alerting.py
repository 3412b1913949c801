"""Shared pieces of the alerting tests: a recording notifier, synthetic traffic and a runtime over a database."""

from __future__ import annotations

from dataclasses import dataclass, field

from lmdeck.db import Database
from lmdeck.monitoring.actions import ActionContext
from lmdeck.monitoring.anomaly.base import DetectorRegistry, Finding, Series
from lmdeck.monitoring.notifiers.base import Notification, NotifierError, NotifierRegistry
from lmdeck.monitoring.runtime import AlertRuntime
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.alerts import ChannelSpec
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.sql_store import SQLTraceStore

T0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600


@dataclass
class Recorder:
    """A notifier that keeps what it is sent; fails the first ``failures`` sends."""

    failures: int = 0
    retryable: bool = True
    sent: list[Notification] = field(default_factory=list)
    attempts: int = 0

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise NotifierError("receiver down", retryable=self.retryable)
        self.sent.append(notification)

    def events(self) -> list[str]:
        return [n.event for n in self.sent]


class AboveMedian:
    """A detector for the tests: the last point is anomalous above ``factor`` times the median of the others."""

    def __init__(self, *, sensitivity: str = "medium", factor: float = 3.0) -> None:
        self.factor = factor

    def evaluate(self, series: Series) -> Finding:
        if len(series) < 4:
            return Finding(anomalous=False, reason="too little history")
        history = sorted(series.values[:-1])
        median = history[len(history) // 2]
        upper = median * self.factor
        value = series.values[-1]
        return Finding(anomalous=value > upper, value=value, expected=median, upper=upper, at=series.times[-1])


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def traffic(
    db: Database,
    at: float,
    *,
    ok: int = 0,
    failed: int = 0,
    route: str = "chat",
    target: str = "fake:a",
    **extra: object,
) -> None:
    """``ok`` successful and ``failed`` 502 traces of ``route``/``target``, spread over the second after ``at``."""
    records = []
    for i in range(ok + failed):
        records.append(
            TraceRecord(
                created_at=at + i / (ok + failed + 1),
                route=route,
                target=target,
                upstream_model="fake-model",
                status_code=502 if i < failed else 200,
                latency_ms=100.0,
                output_tokens=10,
                **extra,  # type: ignore[arg-type]
            )
        )
    SQLTraceStore(db).insert(records)


def build_runtime(
    db: Database,
    recorder: Recorder,
    clock: Clock,
    *,
    actions: ActionContext | None = None,
    detectors: DetectorRegistry | None = None,
    **alert_settings: object,
) -> AlertRuntime:
    notifiers = NotifierRegistry()
    notifiers.add("recorder", lambda spec, resolve: recorder)
    if detectors is None:
        detectors = DetectorRegistry()
        detectors.add("above_median", AboveMedian)
    settings = Settings.model_validate(
        {"alerts": {"evaluation_interval_s": None, "backoff_base_s": 10, **alert_settings}}
    )
    runtime = AlertRuntime.build(
        settings, db, audit=AuditLog(db), notifiers=notifiers, detectors=detectors, action_context=actions, clock=clock
    )
    runtime.config.put_channel(ChannelSpec(name="rec", type="recorder"), actor="test")
    return runtime
