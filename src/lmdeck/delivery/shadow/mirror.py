"""The mirror: a bounded queue per release and a worker that calls the candidate, judges and stores the pair.

:meth:`ShadowMirror.offer` is called once the user's answer has been sent (see
:mod:`lmdeck.delivery.shadow.step`); it never waits: a full queue drops the mirror and counts it.
Each release in shadow has its own lane (queue and worker task, made on its first mirror), so one
release's backlog never holds up another's. The worker, per mirror:

1. checks the budget: the candidate's spend so far (read from the stored pairs, so every gateway
   process counts what the others spent) plus a reservation (the dearest call seen, or the user's
   own request's cost before any) must stay within ``budget_micros``; otherwise the mirror is
   skipped and counted as ``budget_exhausted``;
2. calls the candidate (:class:`~lmdeck.delivery.shadow.dispatch.CandidateCaller`); a failed call
   is a lost pair (the baseline answered, the candidate did not);
3. judges the pair (:class:`~lmdeck.delivery.shadow.judge.PairwiseJudge`) and stores it, off the
   event loop.

Counters (``lmdeck_shadow_*_total`` on ``/metrics``, and :meth:`counters` for the release status)::

    mirror = ShadowMirror(store, caller, judges, metrics_registry)
    mirror.begin(target)                 # the release enters shadow
    mirror.offer(job)                    # from the step, after the response went out
    mirror.counters("reply-v3")          # ShadowCounters(mirrored=12, dropped=0, ...)
    mirror.end("reply-v3")               # the release leaves shadow: its lane stops
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter

from lmdeck.delivery.shadow.dispatch import CandidateCaller, CandidateRefused, ShadowTarget, new_pair_id
from lmdeck.delivery.shadow.judge import PairwiseJudge
from lmdeck.delivery.shadow.store import ShadowPairStore
from lmdeck.money import MICROS_PER_DOLLAR
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.shadow import ShadowCounters, ShadowPair

log = logging.getLogger(__name__)

#: Stored answers are cut to this many characters (the traces keep them whole).
ANSWER_CHARS = 4000


@dataclass(frozen=True)
class MirrorJob:
    """One user's request to mirror: its body as it arrived, its answer, trace id and cost (micro-dollars)."""

    target: ShadowTarget
    body: dict[str, Any]
    request_text: str
    baseline: str
    baseline_trace_id: str
    baseline_cost_micros: int
    principal: Principal | None = None


class ShadowMetrics:
    """The ``lmdeck_shadow_*`` Prometheus counters, per release."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mirrored = Counter(
            "lmdeck_shadow_mirrored", "requests mirrored to a release's candidate", ["release"], registry=registry
        )
        self.dropped = Counter(
            "lmdeck_shadow_dropped", "mirrors dropped because the shadow queue was full", ["release"], registry=registry
        )
        self.budget_exhausted = Counter(
            "lmdeck_shadow_budget_exhausted",
            "mirrors skipped because the shadow budget was spent",
            ["release"],
            registry=registry,
        )
        self.failed = Counter("lmdeck_shadow_failed", "candidate calls that failed", ["release"], registry=registry)
        self.judged = Counter(
            "lmdeck_shadow_judged",
            "pairs judged, by the candidate's outcome",
            ["release", "outcome"],
            registry=registry,
        )
        self.spend = Counter(
            "lmdeck_shadow_spend_usd", "the candidates' spend in shadow, US dollars", ["release"], registry=registry
        )


class _Lane:
    def __init__(self, target: ShadowTarget) -> None:
        self.target = target
        self.queue: asyncio.Queue[MirrorJob] = asyncio.Queue(maxsize=target.spec.queue)
        self.task: asyncio.Task[None] | None = None
        self.spent_micros: int | None = None  # read from the stored pairs before each candidate call
        self.dearest_micros = 0


class ShadowMirror:
    """Mirrors, per release in shadow (module docs). ``offer`` runs on the event loop; ``begin``/``end``
    only change which releases are in shadow and may be called from any thread."""

    def __init__(
        self,
        store: ShadowPairStore,
        caller: CandidateCaller,
        judge_for: Callable[[ShadowTarget], PairwiseJudge],
        registry: CollectorRegistry,
    ) -> None:
        self.store = store
        self.caller = caller
        self.judge_for = judge_for
        self.metrics = ShadowMetrics(registry)
        self._targets: dict[str, ShadowTarget] = {}
        self._lanes: dict[str, _Lane] = {}
        self._counters: dict[str, ShadowCounters] = {}
        self._closed = False

    # --- which releases are in shadow ---------------------------------------------------

    def begin(self, target: ShadowTarget) -> None:
        """Start mirroring for ``target.release`` (replacing an earlier target of that release)."""
        self._targets[target.release] = target
        self._counters.setdefault(target.release, ShadowCounters())

    def end(self, release: str) -> None:
        """Stop mirroring for ``release``; mirrors still queued are not sent."""
        self._targets.pop(release, None)

    def targets(self) -> list[ShadowTarget]:
        return list(self._targets.values())

    def target(self, release: str) -> ShadowTarget | None:
        return self._targets.get(release)

    def covering(self, route: str, body: Any) -> ShadowTarget | None:
        """The release in shadow that covers a request for ``route`` (the first begun), or None."""
        for target in list(self._targets.values()):
            if target.covers(route, body):
                return target
        return None

    def counters(self, release: str) -> ShadowCounters:
        """What the mirror did for ``release`` since this process started (spend: as stored)."""
        counters = self._counters.get(release, ShadowCounters())
        lane = self._lanes.get(release)
        if lane is not None and lane.spent_micros is not None:
            counters = counters.model_copy(update={"spent_micros": lane.spent_micros})
        return counters

    # --- the hot side: never waits ------------------------------------------------------

    def offer(self, job: MirrorJob) -> bool:
        """Queue ``job`` for its release's worker; False (counted as dropped) when the queue is full."""
        release = job.target.release
        if self._closed or release not in self._targets:
            return False
        lane = self._lanes.get(release)
        if lane is None or lane.target != job.target:
            lane = self._open(job.target)
        try:
            lane.queue.put_nowait(job)
        except asyncio.QueueFull:
            self._count(release, "dropped")
            self.metrics.dropped.labels(release).inc()
            return False
        return True

    def _open(self, target: ShadowTarget) -> _Lane:
        old = self._lanes.get(target.release)
        lane = _Lane(target)
        if old is not None:
            lane.spent_micros = old.spent_micros
            lane.dearest_micros = old.dearest_micros
            if old.task is not None:
                old.task.cancel()
        lane.task = asyncio.get_running_loop().create_task(self._work(lane), name=f"shadow:{target.release}")
        self._lanes[target.release] = lane
        return lane

    def _count(self, release: str, name: str, by: int = 1) -> None:
        counters = self._counters.setdefault(release, ShadowCounters())
        setattr(counters, name, getattr(counters, name) + by)

    # --- the worker ---------------------------------------------------------------------

    async def _work(self, lane: _Lane) -> None:
        release = lane.target.release
        while True:
            job = await lane.queue.get()
            if self._targets.get(release) != lane.target:
                lane.queue.task_done()
                return  # the release left shadow (or was begun anew: a new lane took over)
            try:
                await self._mirror(lane, job)
            except Exception:
                log.exception("shadow mirror for release %r failed", release)
            finally:
                lane.queue.task_done()

    async def _mirror(self, lane: _Lane, job: MirrorJob) -> None:
        release = lane.target.release
        spec = lane.target.spec
        # Read from the stored pairs before every call: other gateway processes mirror the same release.
        spent = (await anyio.to_thread.run_sync(self.store.tally, release)).cost_micros
        lane.spent_micros = spent
        reserve = max(lane.dearest_micros, job.baseline_cost_micros)
        if spent + reserve > spec.budget_micros or spent >= spec.budget_micros:
            self._count(release, "budget_exhausted")
            self.metrics.budget_exhausted.labels(release).inc()
            return
        self._count(release, "mirrored")
        self.metrics.mirrored.labels(release).inc()
        pair = ShadowPair(
            id=new_pair_id(),
            release=release,
            baseline_trace_id=job.baseline_trace_id,
            candidate_trace_id=None,
            outcome=None,
            baseline=job.baseline[:ANSWER_CHARS],
            created_at=time.time(),
        )
        try:
            reply = await self.caller.call(lane.target, job.body, job.principal, job.baseline_trace_id)
        except CandidateRefused as exc:
            self._count(release, "failed")
            self.metrics.failed.labels(release).inc()
            log.info("shadow %r: %s", release, exc)
            return
        except Exception as exc:
            # The baseline answered and the candidate did not: the candidate loses the pair.
            self._count(release, "failed")
            self.metrics.failed.labels(release).inc()
            pair = pair.model_copy(update={"outcome": "loss", "error": f"the candidate failed: {exc}"})
            await self._store(lane, pair)
            return
        cost = round(reply.cost * MICROS_PER_DOLLAR)
        lane.spent_micros = spent + cost
        lane.dearest_micros = max(lane.dearest_micros, cost)
        self.metrics.spend.labels(release).inc(reply.cost)
        pair = pair.model_copy(
            update={"candidate_trace_id": reply.trace_id, "candidate": reply.text[:ANSWER_CHARS], "cost_micros": cost}
        )
        try:
            judged = await self.judge_for(lane.target).judge(job.request_text, job.baseline, reply.text)
        except Exception as exc:
            pair = pair.model_copy(update={"error": f"judging failed: {exc}"})
        else:
            pair = pair.model_copy(update={"outcome": judged.outcome, "judgements": judged.judgements})
            self.metrics.judged.labels(release, judged.outcome).inc()
            self._count(release, "judged")
        await self._store(lane, pair)

    async def _store(self, lane: _Lane, pair: ShadowPair) -> None:
        await anyio.to_thread.run_sync(self.store.add, pair)

    async def drain(self) -> None:
        """Wait until every mirror queued so far has been sent, judged and stored (or skipped)."""
        for lane in list(self._lanes.values()):
            if lane.task is not None and not lane.task.done():
                await lane.queue.join()

    async def aclose(self) -> None:
        """Stop every lane (mirrors still queued are not sent)."""
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._lanes.clear()
