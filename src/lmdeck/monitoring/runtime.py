"""Alerting inside a gateway: the stores, the evaluator, the dispatcher and the loop that drives them.

    alerts = AlertRuntime.build(settings, db, audit=policy.audit, secrets=policy.secrets.get, actions=ctx)
    await alerts.start()                  # a Service: syncs the file's rules, then evaluates every interval
    report = await alerts.run_once(now)   # evaluate, run the fired rules' actions, deliver the outbox

The loop and ``POST /api/alerts/evaluate`` both go through :meth:`run_once`, one at a time; the
evaluation and every database write run in worker threads, notifications and actions on the loop's
task: never on a request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from lmdeck.db import Database
from lmdeck.monitoring.actions import BUILTIN_ACTIONS, Action, ActionContext, run_actions
from lmdeck.monitoring.anomaly.base import Detector, DetectorRegistry, load_detectors
from lmdeck.monitoring.conditions import conditions
from lmdeck.monitoring.conditions.anomaly import AnomalyCondition
from lmdeck.monitoring.dispatch import NotificationDispatcher
from lmdeck.monitoring.evaluator import AlertEvaluator, EvaluationReport
from lmdeck.monitoring.incidents import IncidentStore
from lmdeck.monitoring.notifiers.base import NotifierRegistry, load_notifiers
from lmdeck.monitoring.store import AlertConfigStore
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol.alerts import AlertRuleSpec, AlertsDeclared
from lmdeck.protocol.secrets import SecretReference
from lmdeck.settings import AlertSettings, SecretRef, Settings
from lmdeck.tracing.signals import Signals

log = logging.getLogger(__name__)


class AlertRuntime:
    """The gateway's alerting (see the module docs); a Service."""

    def __init__(
        self,
        settings: AlertSettings,
        config: AlertConfigStore,
        incidents: IncidentStore,
        evaluator: AlertEvaluator,
        dispatcher: NotificationDispatcher,
        *,
        audit: AuditLog | None = None,
        action_context: ActionContext | None = None,
        actions: Mapping[str, Action] = BUILTIN_ACTIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = config
        self.incidents = incidents
        self.evaluator = evaluator
        self.dispatcher = dispatcher
        self.audit = audit
        self.action_context = action_context or ActionContext()
        self.actions = dict(actions)
        self.clock = clock
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        *,
        audit: AuditLog | None = None,
        secrets: Callable[[str], str] | None = None,
        vault: Callable[[str], str] | None = None,
        action_context: ActionContext | None = None,
        notifiers: NotifierRegistry | None = None,
        detectors: DetectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AlertRuntime:
        alerts = settings.alerts
        config = AlertConfigStore(db, audit, clock)
        incidents = IncidentStore(db)
        signals = Signals(db, minute_days=settings.tracing.retention.minute_days, clock=clock)
        evaluator = AlertEvaluator(config, incidents, signals, conditions(detectors or load_detectors()))

        def resolve(reference: SecretReference) -> str:
            ref = SecretRef.of(reference)
            if secrets is not None:
                ref.bind(secrets)
            if vault is not None:
                ref.bind_vault(vault)
            return ref.resolve()  # ConfigError (a ValueError) names the variable or secret to set

        dispatcher = NotificationDispatcher(
            config,
            incidents,
            notifiers or load_notifiers(),
            resolve,
            max_attempts=alerts.max_attempts,
            backoff_base_s=alerts.backoff_base_s,
            backoff_max_s=alerts.backoff_max_s,
            clock=clock,
        )
        return cls(
            alerts, config, incidents, evaluator, dispatcher, audit=audit, action_context=action_context, clock=clock
        )

    # -- the work ---------------------------------------------------------------------------------

    async def run_once(self, now: float | None = None) -> EvaluationReport:
        """Evaluate every rule at ``now`` (default: the clock), run the actions of the alerts that fired,
        and deliver what is due in the outbox."""
        async with self._lock:
            at = self.clock() if now is None else now
            report = await anyio.to_thread.run_sync(self.evaluator.evaluate, at)
            for incident, rule in report.fired:
                if rule.actions:
                    await run_actions(self.actions, self.action_context, incident, rule, self.incidents, self.audit, at)
            await self.dispatcher.drain(max(at, self.clock()))
            return report

    def sync_declared(self, declared: AlertsDeclared, actor: str = "config") -> None:
        """Store the rules, channels and silences of the config file (never removes others); blocking."""
        if declared.rules or declared.channels or declared.silences:
            changes = self.config.apply(declared, prune=False, actor=actor)
            if changes:
                log.info("alerts from the config file: %s", ", ".join(c.description for c in changes))

    # -- Service -----------------------------------------------------------------------------------

    async def start(self) -> None:
        declared = AlertsDeclared(
            rules=self.settings.rules, channels=self.settings.channels, silences=self.settings.silences
        )
        await anyio.to_thread.run_sync(self.sync_declared, declared)
        if self.settings.evaluation_interval_s is not None:
            self._task = asyncio.create_task(self._loop(self.settings.evaluation_interval_s))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("alert evaluation failed; trying again in %gs", interval_s)

    def anomaly_detector(self, rule: AlertRuleSpec) -> Detector:
        """The detector an anomaly rule would use (``ValueError`` naming the fix when it cannot be built)."""
        condition = self.evaluator.kinds["anomaly"]
        if not isinstance(condition, AnomalyCondition):
            raise ValueError("this evaluator has no anomaly rule kind")
        return condition.detector(rule)

    def status(self) -> dict[str, Any]:
        """The rules that could not be evaluated last time (name -> error)."""
        return {"rule_errors": dict(self.evaluator.errors)}
