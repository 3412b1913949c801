"""The release controller: at every tick, analyse each live release and act on the decision.

    controller = ReleaseController(service, exposures, clock=time.time, tick_s=5.0)
    await controller.tick(now)       # tests drive it with synthetic times; production runs it in a loop

A release in the canary is analysed (:func:`lmdeck.delivery.analysis.analyse`) on the exposures of
its current step and the online scores and feedback joined to them (at a 100% step, which has no
baseline traffic, the candidate's requests of the step against the baseline's of the whole release); the decision ``promote``
moves it to the next step (or promotes it), ``rollback`` and ``abort`` end it, ``hold`` is
recorded in its history once per interval, ``wait`` is not recorded. A release in the shadow
stage asks the shadow evidence (:class:`ShadowEvidence`) for its verdict: ``pass`` enters the
canary, ``fail`` rolls back, ``wait`` waits until the deadline aborts it.

Each decision acted on is a transition of :class:`~lmdeck.delivery.service.ReleaseService` (saved,
audited with the analysis as evidence, published). Reads and writes run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from lmdeck.delivery.analysis import Window, analyse
from lmdeck.delivery.exposures import ReleaseExposures
from lmdeck.delivery.metrics import ReleaseMetrics
from lmdeck.delivery.service import ReleaseService
from lmdeck.delivery.store import ReleaseRecord
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import Analysis
from lmdeck.protocol.shadow import ShadowSpec, ShadowVerdict

log = logging.getLogger(__name__)


class ShadowEvidence(Protocol):
    """What the shadow stage concluded about a release (:class:`~lmdeck.protocol.delivery.ShadowVerdict`)."""

    def verdict(self, release: str, spec: ShadowSpec | None = None) -> ShadowVerdict: ...


class ReleaseController:
    """Analyses live releases and acts on the decisions (module docs)."""

    def __init__(
        self,
        service: ReleaseService,
        exposures: ReleaseExposures | None = None,
        *,
        shadow: Callable[[], ShadowEvidence | None] | None = None,
        metrics: ReleaseMetrics | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float | None = 5.0,
    ) -> None:
        self.service = service
        self.exposures = exposures
        self.shadow = shadow or (lambda: None)
        self.metrics = metrics
        self.clock = clock
        self.tick_s = tick_s
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Analyse every live release at ``now`` (default: the clock) and act; returns, per release,
        its name, state after the tick and the decision (with the analysis when one was made)."""
        when = self.clock() if now is None else now
        if self.exposures is not None:
            await self.exposures.flush()
        store = self.service.store
        live = await anyio.to_thread.run_sync(lambda: store.all(("shadow", "canary")))
        out = []
        for record in live:
            try:
                out.append(await self._decide(record, when))
            except APIError as exc:  # changed meanwhile (another process acted): decided again next tick
                log.info("release %s: %s", record.name, exc.message)
        return out

    async def _decide(self, record: ReleaseRecord, now: float) -> dict[str, Any]:
        if record.state == "shadow":
            return await self._shadow(record, now)
        analysis = await anyio.to_thread.run_sync(self._analyse, record, now)
        if self.metrics is not None:
            self.metrics.share.labels(record.name).set(record.percent)
            if analysis.decision != "wait":
                self.metrics.decisions.labels(record.name, analysis.decision).inc()
        summary: dict[str, Any] = {"release": record.name, "decision": analysis.decision, "reason": analysis.reason}
        evidence = {"analysis": analysis.model_dump(mode="json")}
        if analysis.decision == "wait":
            summary["state"] = record.state
            return summary
        if analysis.decision == "hold":
            last = record.last_analysis
            if last is not None and last.decision == "hold" and now - last.at < record.spec.strategy.interval_s:
                summary["state"] = record.state
                return summary
        action = {"promote": "promote", "rollback": "rollback", "abort": "abort", "hold": "hold"}[analysis.decision]
        done = await self.service.act(
            record.name,
            action,  # type: ignore[arg-type]
            reason=analysis.reason,
            evidence=evidence,
            analysis=analysis,
            now=now,
        )
        summary["state"] = done["state"]
        summary["analysis"] = evidence["analysis"]
        if self.metrics is not None:
            self.metrics.share.labels(record.name).set(float(done["percent"]))
        return summary

    def _analyse(self, record: ReleaseRecord, now: float) -> Analysis:
        store = self.service.store
        assert record.step is not None and record.step_started_at is not None and record.started_at is not None
        step = store.exposures(record.name, record.step)
        whole = record.percent >= 100.0  # no baseline in this step: compare with the release's earlier ones
        if whole:
            step = [e for e in store.exposures(record.name) if e.variant == "baseline"] + [
                e for e in step if e.variant == "candidate"
            ]
        since = now - record.spec.strategy.interval_s
        if record.last_analysis is not None:
            since = max(since, record.last_analysis.at)
        recent = [e for e in step if e.created_at >= since]
        values = {}
        for m in record.spec.metrics:
            if m.name.startswith(("score:", "feedback:")):
                found = store.values(record.name, m.name, record.step)
                if whole:
                    found["baseline"] = store.values(record.name, m.name)["baseline"]
                values[m.name] = found
        return analyse(
            record.spec,
            Window(step=step, recent=recent, values=values),
            now=now,
            step=record.step,
            step_started_at=record.step_started_at,
            started_at=record.started_at,
        )

    async def _shadow(self, record: ReleaseRecord, now: float) -> dict[str, Any]:
        summary: dict[str, Any] = {"release": record.name, "state": record.state}
        evidence = self.shadow()
        verdict = ShadowVerdict(detail="no shadow stage is installed in this gateway")
        if evidence is not None:
            verdict = await anyio.to_thread.run_sync(evidence.verdict, record.name, record.spec.shadow)
        proof = {"shadow": verdict.model_dump(mode="json")}
        started = record.started_at or now
        if verdict.decision == "wait" and now >= started + record.spec.strategy.deadline_s:
            done = await self.service.act(
                record.name, "abort", reason="deadline: the shadow stage reached no verdict", evidence=proof, now=now
            )
            summary.update(decision="abort", state=done["state"])
        elif verdict.decision == "pass":
            why = f"shadow passed: {verdict.wins} wins, {verdict.ties} ties, {verdict.losses} losses in {verdict.pairs}"
            done = await self.service.act(record.name, "shadow_pass", reason=why, evidence=proof, now=now)
            summary.update(decision="shadow_pass", state=done["state"])
        elif verdict.decision == "fail":
            why = f"shadow failed: {verdict.wins} wins, {verdict.ties} ties, {verdict.losses} losses in {verdict.pairs}"
            done = await self.service.act(record.name, "rollback", reason=why, evidence=proof, now=now)
            summary.update(decision="rollback", state=done["state"])
        else:
            summary["decision"] = "wait"
        summary["shadow"] = proof["shadow"]
        return summary

    # -- the Service loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self.tick_s is not None
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("the release controller's tick failed; trying again in %.1fs", self.tick_s)

    async def start(self) -> None:
        if self.tick_s is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="release-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
