"""Running the configured guardrails for one request, and making each verdict visible.

    service = GuardrailService(config, route_config=lookup, metrics_registry=metrics.registry)
    plan = service.plan(ctx)                                     # GuardPlan for the request's route and caller
    checked = await service.check(plan.input, text, GuardContext("input", route="support"), ctx)

``check`` runs the ``sync`` guardrails concurrently and waits for them; each verdict goes on
the trace (``metadata["guardrails"]``: which guardrail, stage, finding, action, score, reason,
latency and spans as positions and entity types, never the text found), into the Prometheus
series ``lmdeck_guardrail_verdicts_total{guardrail,action,route}`` and
``lmdeck_guardrail_latency_seconds{guardrail,stage}``; the non-pass actions also go to
``metadata["guardrail_actions"]`` (counted by the trace rollups). :meth:`spawn` starts the
``async`` (flag-only) ones beside the request: the request does not wait, their entry on the
trace reads ``pending`` until the verdict arrives (a verdict that arrives after the trace was
written is still counted and logged).

Each check has ``timeout_s`` seconds (the attachment's, else ``DEFAULT_TIMEOUT_S``); one
that runs past it counts as a failure (``TimeoutError``). Built-ins block in their own bounded
pool of threads (:func:`~lmdeck.guardrails.base.run_blocking`), never the default executor.
A guardrail that raises or times out is recorded with action ``error``, logged and counted. Then
:func:`refuse_unchecked` applies the attachment's ``on_error``: ``refuse`` answers 503
``guardrail_unavailable``, ``allow`` lets the request go on unchecked. Unset, it fails closed
(refuses) where failing open would let data out: an attachment whose action is ``mask``, or a
guardrail the data policy relies on; others fail open. A text a guardrail declines as too
large to check (:class:`~lmdeck.guardrails.base.TooLargeToCheck`) is refused whatever
``on_error`` says: 413 on input, 422 on output, ``guardrail_input_too_large``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from lmdeck.guardrails.base import GuardContext, TooLargeToCheck, Verdict
from lmdeck.guardrails.config import EMPTY_PLAN, Attached, GuardPlan, GuardrailConfig
from lmdeck.pipeline.context import RequestContext, Slot
from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import RouteConfig, Settings
from lmdeck.tracing.metrics import new_registry

log = logging.getLogger(__name__)

#: Seconds one check may take (unless the attachment's ``timeout_s`` says otherwise) before it counts as failed.
DEFAULT_TIMEOUT_S = 10.0

#: The trace's ``metadata`` key of the verdicts.
VERDICTS = "guardrails"
#: The trace's ``metadata`` key of the actions taken (``"pii:mask"``), counted by the rollups.
ACTIONS = "guardrail_actions"

#: The plan of the request, put by the input step for the output step.
PLAN: Slot[GuardPlan] = Slot("guardrails.plan")

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass
class Checked:
    """One guardrail's verdict on one text (``verdict`` is None when it raised; ``error`` says what)."""

    attached: Attached
    verdict: Verdict | None
    latency_ms: float
    error: str | None = None
    #: Why the guardrail declined the text as too large to check (the text's length and the limit), if it did.
    too_large: str | None = None

    @property
    def found(self) -> bool:
        return self.verdict is not None and not self.verdict.passed


def verdict_entry(checked: Checked, stage: str, action: str, where: str | None = None) -> dict[str, Any]:
    """What the trace keeps of a verdict: no text of the request or the answer, only positions and types."""
    verdict = checked.verdict
    entry: dict[str, Any] = {
        "guardrail": checked.attached.name,
        "stage": stage,
        "mode": checked.attached.use.mode,
        "finding": verdict.finding if verdict is not None else None,
        "action": action,
        "latency_ms": round(checked.latency_ms, 3),
    }
    if where is not None:
        entry["where"] = where
    if verdict is not None:
        entry["score"] = verdict.score
        entry["reason"] = verdict.reason
        if verdict.spans:
            entry["spans"] = [
                {"start": s.start, "end": s.end, "entity": s.entity, "score": s.score} for s in verdict.spans
            ]
    if checked.error is not None:
        entry["error"] = checked.error
    return entry


class GuardrailMetrics:
    """The guardrail series on the gateway's Prometheus registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or new_registry()
        self.verdicts = Counter(
            "lmdeck_guardrail_verdicts",
            "guardrail verdicts by the action taken (pass, flag, mask, block, fallback, error)",
            ["guardrail", "action", "route"],
            registry=r,
        )
        self.latency = Histogram(
            "lmdeck_guardrail_latency_seconds",
            "time one guardrail took on one text",
            ["guardrail", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )


def action_for(checked: Checked) -> str:
    """The action the gateway takes on a verdict: ``pass``, ``error``, or the attachment's action."""
    if checked.verdict is None:
        return "error"
    if checked.verdict.passed:
        return "pass"
    action = checked.attached.use.action
    if action == "mask" and not checked.verdict.spans:
        return "flag"  # nothing to mask: the finding is kept on the trace
    return action


def on_error(attached: Attached, restricted: Collection[str] = ()) -> str:
    """``allow`` or ``refuse``: the attachment's ``on_error``, or, unset, ``refuse`` for a ``mask``
    attachment or a guardrail named in ``restricted`` (the data policy's) and ``allow`` otherwise."""
    if attached.use.on_error is not None:
        return attached.use.on_error
    return "refuse" if attached.use.action == "mask" or attached.name in restricted else "allow"


def refuse_unchecked(checked: Checked, restricted: Collection[str] = (), stage: str = "input") -> None:
    """Raise the 4xx for a text too large to check, or the 503 for a failed guardrail that must not fail open.

    ``restricted``: the data policy's guardrails (their failure refuses unless ``on_error: allow``).
    """
    if checked.verdict is not None:
        return
    if checked.too_large is not None:
        what = "request" if stage == "input" else "answer"
        raise APIError(
            413 if stage == "input" else 422,
            f"the guardrail {checked.attached.name!r} cannot check this {what}: {checked.too_large}; "
            "send a shorter text, or raise the guardrail's max_chars",
            code="guardrail_input_too_large",
            param="messages" if stage == "input" else None,
        )
    if on_error(checked.attached, restricted) == "refuse":
        raise APIError(
            503,
            f"the guardrail {checked.attached.name!r} could not check this request ({checked.error}) and the route "
            "refuses unchecked requests (on_error unset on a mask or data-policy guardrail, or `refuse`); "
            "retry, or see the gateway's log",
            type="server_error",
            code="guardrail_unavailable",
            headers={"retry-after": "1"},
        )


class GuardrailService:
    """The built guardrails of a gateway and how a request runs them (see the module docstring)."""

    def __init__(
        self,
        config: GuardrailConfig,
        route_config: Callable[[str], RouteConfig | None],
        metrics_registry: CollectorRegistry | None = None,
        internal_token: str | None = None,
    ) -> None:
        self.config = config
        #: The in-process token guardrails' own calls (a judge's) use: those are not guarded again.
        self.internal_token = internal_token
        self.route_config = route_config
        self.metrics = GuardrailMetrics(metrics_registry)
        self._background: set[asyncio.Task[None]] = set()
        self._warming: set[asyncio.Task[None]] = set()

    def plan(self, ctx: RequestContext) -> GuardPlan:
        """The guardrails of the request's route, its team and its key (cached on the request)."""
        plan = ctx.slots.get(PLAN)
        if plan is None:
            plan = self.config.plan_for(self.route_config(ctx.route_name), ctx.principal)
            ctx.slots.put(PLAN, plan)
        return plan

    @property
    def data_policy_guardrails(self) -> list[str]:
        policy = self.config.data_policy
        return [n for n in policy.restricted if n in self.config.instances] if policy is not None else []

    async def _one(self, attached: Attached, text: str, gctx: GuardContext) -> Checked:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(attached.use.timeout_s or DEFAULT_TIMEOUT_S):
                verdict = await attached.guardrail.check(text, gctx)
        except TooLargeToCheck as exc:
            log.warning("guardrail %r declined the %s as too large: %s", attached.name, gctx.stage, exc)
            return Checked(attached, None, (time.perf_counter() - started) * 1000.0, "TooLargeToCheck", str(exc))
        except Exception as exc:
            log.warning("guardrail %r failed on the %s", attached.name, gctx.stage, exc_info=True)
            return Checked(attached, None, (time.perf_counter() - started) * 1000.0, f"{type(exc).__name__}")
        return Checked(attached, verdict, (time.perf_counter() - started) * 1000.0)

    async def check(self, attached: Sequence[Attached], text: str, gctx: GuardContext) -> list[Checked]:
        """The verdicts of the ``sync`` guardrails of ``attached`` on ``text``, run concurrently, in order."""
        sync = [a for a in attached if a.use.mode == "sync"]
        if not sync:
            return []
        if len(sync) == 1:
            return [await self._one(sync[0], text, gctx)]
        return list(await asyncio.gather(*(self._one(a, text, gctx) for a in sync)))

    def record(self, ctx: RequestContext, checked: Checked, action: str, stage: str, where: str | None = None) -> None:
        """The verdict on the request's trace and in the metrics, as the action the gateway took."""
        trace = ctx.trace
        route = ctx.route_name or "unknown"
        self.metrics.verdicts.labels(checked.attached.name, action, route).inc()
        self.metrics.latency.labels(checked.attached.name, stage).observe(checked.latency_ms / 1000.0)
        trace.metadata.setdefault(VERDICTS, []).append(verdict_entry(checked, stage, action, where))
        if action != "pass":
            trace.metadata.setdefault(ACTIONS, []).append(f"{checked.attached.name}:{action}")

    def spawn(self, attached: Sequence[Attached], text: str, gctx: GuardContext, trace: TraceRecord) -> None:
        """Start the ``async`` guardrails of ``attached`` on ``text``; their flags reach the trace when they end."""
        for item in attached:
            if item.use.mode != "async":
                continue
            entry: dict[str, Any] = {"guardrail": item.name, "stage": gctx.stage, "mode": "async", "action": "pending"}
            trace.metadata.setdefault(VERDICTS, []).append(entry)
            task = asyncio.get_running_loop().create_task(self._later(item, text, gctx, trace, entry))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _later(
        self, item: Attached, text: str, gctx: GuardContext, trace: TraceRecord, entry: dict[str, Any]
    ) -> None:
        checked = await self._one(item, text, gctx)
        action = action_for(checked)
        route = trace.route or gctx.route or "unknown"
        self.metrics.verdicts.labels(item.name, action, route).inc()
        self.metrics.latency.labels(item.name, gctx.stage).observe(checked.latency_ms / 1000.0)
        entry.update(verdict_entry(checked, gctx.stage, action))
        if action != "pass":
            trace.metadata.setdefault(ACTIONS, []).append(f"{item.name}:{action}")
            log.info("guardrail %r flagged request %s: %s", item.name, trace.request_id, entry.get("reason", ""))

    def warm(self) -> None:
        """Start loading, in worker threads, what the instances with a ``warm()`` method load on first use.

        Some built-ins load a model when first checked (Presidio's analyzer, lingua's detector:
        seconds); warming them as the gateway starts spares the first request that wait. A
        failure is logged and the instance loads again on its first check.
        """
        for name, instance in self.config.instances.items():
            warm = getattr(instance, "warm", None)
            if callable(warm):
                task = asyncio.create_task(self._warm(name, warm))
                self._warming.add(task)
                task.add_done_callback(self._warming.discard)

    async def _warm(self, name: str, warm: Callable[[], object]) -> None:
        try:
            await asyncio.to_thread(warm)
        except Exception:
            log.exception("guardrail %r could not load ahead of its first check", name)

    async def drain(self) -> None:
        """Wait for the async guardrails still running (at shutdown; tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def stop(self) -> None:
        for task in [*self._background, *self._warming]:
            task.cancel()
        await asyncio.gather(*self._background, *self._warming, return_exceptions=True)


def policy_document(settings: Settings) -> dict[str, Any]:
    """The guardrail policy a config declares (definitions, data policy, attachments), as the audit log keeps it."""
    block = settings.guardrails.model_dump(mode="json", exclude_defaults=True)
    routes = {r.name: r.guardrails.model_dump(mode="json") for r in settings.routes if r.guardrails is not None}
    targets = {
        r.name: {t.id: t.data_classification for t in r.targets} for r in settings.routes if r.guardrails or r.targets
    }
    return {"guardrails": block, "routes": routes, "data_classes": targets}


def policy_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


__all__ = ["EMPTY_PLAN", "Checked", "GuardrailService", "action_for", "policy_document"]
