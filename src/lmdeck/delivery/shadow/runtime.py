"""The shadow stage's parts, built once with the gateway and started with it.

shadow = ShadowRuntime(db, metrics.registry, evaluators, token=lambda: identity.token)
declarations = [*shadow.steps(), ...]        # the `shadow` step, phase trace, after `record`
shadow.install(pipeline)                     # candidate and judge calls go through it
shadow.begin(ShadowTarget(release="reply-v3", route="support", spec=spec, candidate=variant))
shadow.evidence.verdict("reply-v3")          # ShadowVerdict(..., decision="wait")  (blocking)
shadow.status("reply-v3")                    # ShadowStatus for the release's status (blocking)
shadow.end("reply-v3")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio
from prometheus_client import CollectorRegistry

from lmdeck.changes import ChangeNotices
from lmdeck.db import Database
from lmdeck.delivery.shadow.dispatch import CandidateCaller, ShadowTarget
from lmdeck.delivery.shadow.evidence import ShadowEvidence, decide
from lmdeck.delivery.shadow.judge import PairwiseJudge
from lmdeck.delivery.shadow.mirror import ShadowMirror
from lmdeck.delivery.shadow.step import ShadowStep
from lmdeck.delivery.shadow.store import ShadowPairStore
from lmdeck.delivery.store import ReleaseRecord, ReleaseStore
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.polling import Poller
from lmdeck.protocol.delivery import ReleaseEvent, ReleaseSpec
from lmdeck.protocol.evaluation import VariantSpec
from lmdeck.protocol.shadow import ShadowSpec, ShadowStatus

log = logging.getLogger(__name__)


def target_of(spec: ReleaseSpec) -> ShadowTarget | None:
    """The shadow target a release spec describes (None without a ``shadow`` stage)."""
    if spec.shadow is None:
        return None
    candidate = spec.candidate
    variant = VariantSpec(
        name="candidate",
        weight=1,
        prompt_version=candidate.prompt_version,
        model=candidate.model,
        route=candidate.route,
    )
    return ShadowTarget(
        release=spec.name,
        route=spec.route,
        spec=spec.shadow,
        candidate=variant,
        params=dict(candidate.params),
        prompt=spec.prompt,
        label=spec.label,
    )


class ShadowRuntime:
    """Mirroring, judging and the shadow gate for the releases in shadow (module docs)."""

    def __init__(
        self,
        db: Database,
        registry: CollectorRegistry,
        evaluators: EvaluatorRegistry,
        token: Callable[[], str | None],
        *,
        poll_interval: float = 2.0,
    ) -> None:
        self.store = ShadowPairStore(db)
        self.releases = ReleaseStore(db)
        self.evaluators = evaluators
        self._pipeline: Pipeline | None = None
        self.caller = CandidateCaller(lambda: self.pipeline, token)
        self._judges: dict[str, tuple[ShadowTarget, PairwiseJudge]] = {}
        self.mirror = ShadowMirror(self.store, self.caller, self.judge_for, registry)
        self.evidence = ShadowEvidence(self.store, self._spec_of)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller = Poller(
            self.refresh,
            interval=poll_interval,
            name="shadow-poll",
            log=log,
            failure=f"reloading releases in shadow failed; retrying in {poll_interval:.1f}s",
        )

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("ShadowRuntime.install() was not called")
        return self._pipeline

    def install(self, pipeline: Pipeline) -> None:
        """Send candidate and judge calls through ``pipeline`` (the gateway's own)."""
        self._pipeline = pipeline

    def steps(self) -> list[StepDeclaration]:
        return [StepDeclaration(ShadowStep(self.mirror), "trace", after=("record",))]

    def judge_for(self, target: ShadowTarget) -> PairwiseJudge:
        """The judge of ``target``'s pairs (built once per target).

        Raises ``EvaluatorError`` for a judge that names an unknown evaluator or needs an expected answer.
        """
        known = self._judges.get(target.release)
        if known is not None and known[0] == target:
            return known[1]
        judge = PairwiseJudge(target.spec.judges, self.evaluators, self.caller.judge_client())
        self._judges[target.release] = (target, judge)
        return judge

    def check(self, spec: ShadowSpec) -> None:
        """Raise ``EvaluatorError`` (naming the fix) when one of ``spec``'s judges cannot be built."""
        PairwiseJudge(spec.judges, self.evaluators, self.caller.judge_client())

    def begin(self, target: ShadowTarget) -> None:
        """Mirror ``target.release``'s route to its candidate from now on.

        Raises ``EvaluatorError`` (naming the fix) when a judge cannot be built, before anything is mirrored.
        """
        self.check(target.spec)
        self.mirror.begin(target)

    def end(self, release: str) -> None:
        """Stop mirroring ``release`` (its pairs stay stored: :attr:`evidence` still reads them)."""
        self.mirror.end(release)

    def _spec_of(self, release: str) -> ShadowSpec | None:
        """The shadow spec of ``release``: the one mirroring now, else the stored release's (blocking)."""
        target = self.mirror.target(release)
        if target is not None:
            return target.spec
        record = self.releases.get(release)
        return record.spec.shadow if record is not None else None

    def status(self, release: str, target: ShadowTarget | None = None) -> ShadowStatus:
        """The shadow stage of ``release`` for its status (blocking: reads the store).

        ``target`` describes it when it is no longer in shadow (else the stored release's spec does).
        Raises ``LookupError`` when ``release`` has no shadow stage.
        """
        active = self.mirror.target(release)
        target = active or target
        if target is None:
            record = self.releases.get(release)
            target = target_of(record.spec) if record is not None else None
        if target is None:
            raise LookupError(f"release {release!r} is not in shadow: pass its ShadowTarget")
        tally = self.store.tally(release)
        counters = self.mirror.counters(release).model_copy(update={"spent_micros": tally.cost_micros})
        return ShadowStatus(
            release=release,
            route=target.route,
            active=active is not None,
            spec=target.spec,
            budget_left_micros=max(0, target.spec.budget_micros - tally.cost_micros),
            counters=counters,
            verdict=decide(tally, target.spec),
        )

    def follow(self, records: list[ReleaseRecord]) -> None:
        """Begin the releases of ``records`` in state ``shadow``; end the shadows of all others."""
        wanted: dict[str, ShadowTarget] = {}
        for record in records:
            target = target_of(record.spec) if record.state == "shadow" else None
            if target is not None:
                wanted[target.release] = target
        for release in [t.release for t in self.mirror.targets() if t.release not in wanted]:
            self.end(release)
        for release, target in wanted.items():
            if self.mirror.target(release) != target:
                try:
                    self.begin(target)
                except Exception:
                    log.exception("release %r cannot run its shadow stage", release)

    async def refresh(self) -> None:
        records = await anyio.to_thread.run_sync(self.releases.all, ("shadow",))
        self.follow(records)

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Reload at once when another process announces a release transition (topic ``delivery``)."""
        changes.subscribe("delivery", self._poller.nudge)

    def subscribe(self, subscribe: Callable[[Callable[[ReleaseEvent], None]], object]) -> None:
        """Refresh at once on every release event (``subscribe`` is ``DeliveryEvents.subscribe``)."""
        subscribe(self._on_event)

    def _on_event(self, event: ReleaseEvent) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self.refresh()))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.refresh()
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
        await self.mirror.aclose()
