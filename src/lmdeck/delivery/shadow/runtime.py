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

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from lmdeck.db import Database
from lmdeck.delivery.shadow.dispatch import CandidateCaller, ShadowTarget
from lmdeck.delivery.shadow.evidence import ShadowEvidence, decide
from lmdeck.delivery.shadow.judge import PairwiseJudge
from lmdeck.delivery.shadow.mirror import ShadowMirror
from lmdeck.delivery.shadow.step import ShadowStep
from lmdeck.delivery.shadow.store import ShadowPairStore
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.protocol.shadow import ShadowSpec, ShadowStatus


class ShadowRuntime:
    """Mirroring, judging and the shadow gate for the releases in shadow (module docs)."""

    def __init__(
        self,
        db: Database,
        registry: CollectorRegistry,
        evaluators: EvaluatorRegistry,
        token: Callable[[], str | None],
    ) -> None:
        self.store = ShadowPairStore(db)
        self.evaluators = evaluators
        self._pipeline: Pipeline | None = None
        self.caller = CandidateCaller(lambda: self.pipeline, token)
        self._judges: dict[str, tuple[ShadowTarget, PairwiseJudge]] = {}
        self.mirror = ShadowMirror(self.store, self.caller, self.judge_for, registry)
        self.evidence = ShadowEvidence(self.store, self._spec_of)

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
        if known is not None and known[0] is target:
            return known[1]
        judge = PairwiseJudge(target.spec.judges, self.evaluators, self.caller.judge_client())
        self._judges[target.release] = (target, judge)
        return judge

    def begin(self, target: ShadowTarget) -> None:
        """Mirror ``target.release``'s route to its candidate from now on.

        Raises ``EvaluatorError`` (naming the fix) when a judge cannot be built, before anything is mirrored.
        """
        PairwiseJudge(target.spec.judges, self.evaluators, self.caller.judge_client())
        self.mirror.begin(target)

    def end(self, release: str) -> None:
        """Stop mirroring ``release`` (its pairs stay stored: :attr:`evidence` still reads them)."""
        self.mirror.end(release)

    def _spec_of(self, release: str) -> ShadowSpec | None:
        target = self.mirror.target(release)
        return target.spec if target is not None else None

    def status(self, release: str, target: ShadowTarget | None = None) -> ShadowStatus:
        """The shadow stage of ``release`` for its status (blocking: reads the store).

        ``target`` describes it when it is no longer in shadow. Raises ``LookupError`` when neither is known.
        """
        active = self.mirror.target(release)
        target = active or target
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

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.mirror.aclose()
