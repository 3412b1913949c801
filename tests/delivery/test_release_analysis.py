"""The release analysis: its decisions on synthetic traffic, and its false-rollback rate when nothing differs."""

from __future__ import annotations

import random
from typing import Any

from lmdeck.delivery.analysis import Window, analyse
from lmdeck.delivery.store import ReleaseExposure
from lmdeck.protocol.delivery import ReleaseSpec

INTERVAL = 60.0


def release(**extra: Any) -> ReleaseSpec:
    data: dict[str, Any] = {
        "name": "r",
        "route": "support",
        "candidate": {"params": {"temperature": 0.1}},
        "strategy": {"steps": [10, 50, 100], "interval_s": INTERVAL, "min_samples": 30, "alpha": 0.05},
        "metrics": [
            {"name": "error_rate", "tolerance": 0.05},
            {"name": "latency", "tolerance": 50},
            {"name": "score:exact", "tolerance": 0.05},
        ],
    }
    return ReleaseSpec.model_validate({**data, **extra})


class Traffic:
    """Synthetic exposures of both variants, one interval at a time (seeded: reproducible)."""

    def __init__(self, seed: int, error: dict[str, float], score: dict[str, float]) -> None:
        self.rng = random.Random(seed)
        self.error, self.score = error, score
        self.exposures: list[ReleaseExposure] = []
        self.values: dict[str, list[float]] = {"baseline": [], "candidate": []}
        self.count = 0

    def interval(self, start: float, per_variant: int) -> None:
        for variant in ("baseline", "candidate"):
            for i in range(per_variant):
                self.count += 1
                failed = self.rng.random() < self.error[variant]
                self.exposures.append(
                    ReleaseExposure(
                        trace_id=f"t{self.count}",
                        release="r",
                        variant=variant,
                        step=0,
                        status_code=500 if failed else 200,
                        latency_ms=self.rng.lognormvariate(5.0, 0.3),
                        ttft_ms=None,
                        cost=0.0001,
                        blocked=False,
                        created_at=start + i * (INTERVAL / per_variant),
                    )
                )
                self.values[variant].append(1.0 if self.rng.random() < self.score[variant] else 0.0)

    def window(self, since: float) -> Window:
        recent = [e for e in self.exposures if e.created_at >= since]
        return Window(step=list(self.exposures), recent=recent, values={"score:exact": dict(self.values)})


def test_a_clearly_better_candidate_is_promoted_after_its_interval() -> None:
    spec = release()
    traffic = Traffic(1, error={"baseline": 0.0, "candidate": 0.0}, score={"baseline": 0.6, "candidate": 0.95})
    traffic.interval(0.0, 200)
    early = analyse(spec, traffic.window(0.0), now=30.0, step=0, step_started_at=0.0, started_at=0.0)
    assert early.decision == "wait" and "held 60s" in early.reason
    done = analyse(spec, traffic.window(0.0), now=INTERVAL, step=0, step_started_at=0.0, started_at=0.0)
    assert done.decision == "promote", done.reason
    score = next(m for m in done.metrics if m.name == "score:exact")
    assert score.verdict == "pass" and score.candidate is not None and score.candidate > 0.9


def test_a_candidate_failing_a_fifth_of_its_requests_is_rolled_back_within_two_intervals() -> None:
    spec = release()
    traffic = Traffic(2, error={"baseline": 0.0, "candidate": 0.2}, score={"baseline": 0.8, "candidate": 0.8})
    decisions = []
    for k in range(2):
        traffic.interval(k * INTERVAL, 100)
        now = (k + 1) * INTERVAL
        decisions.append(
            analyse(spec, traffic.window(now - INTERVAL), now=now, step=0, step_started_at=0.0, started_at=0.0)
        )
    assert "rollback" in [d.decision for d in decisions], [d.reason for d in decisions]
    assert "error_rate" in next(d for d in decisions if d.decision == "rollback").reason


def test_a_hard_guard_rolls_back_before_any_test_or_interval() -> None:
    spec = release(hard_guards=[{"metric": "error_rate", "ceiling": 0.1, "min_samples": 10}])
    traffic = Traffic(3, error={"baseline": 0.0, "candidate": 0.5}, score={"baseline": 0.8, "candidate": 0.8})
    traffic.interval(0.0, 12)
    result = analyse(spec, traffic.window(0.0), now=5.0, step=0, step_started_at=0.0, started_at=0.0)
    assert result.decision == "rollback" and result.reason.startswith("hard guard: candidate error_rate")


def test_mixed_evidence_holds_and_aborts_at_the_deadline() -> None:
    spec = release(strategy={"steps": [50, 100], "interval_s": INTERVAL, "min_samples": 30, "deadline_s": 300})
    # A little worse on the score: neither shown worse than the tolerance nor shown within it.
    traffic = Traffic(4, error={"baseline": 0.0, "candidate": 0.0}, score={"baseline": 0.8, "candidate": 0.74})
    traffic.interval(0.0, 60)
    held = analyse(spec, traffic.window(0.0), now=INTERVAL, step=0, step_started_at=0.0, started_at=0.0)
    assert held.decision == "hold", held.reason
    late = analyse(spec, traffic.window(0.0), now=300.0, step=0, step_started_at=0.0, started_at=0.0)
    assert late.decision == "abort" and "deadline" in late.reason


def test_identical_variants_are_rolled_back_no_more_often_than_alpha() -> None:
    """200 simulated releases of a candidate identical to its baseline, each analysed at every one of
    12 intervals (peeking every time): the share ever rolled back stays within the spec's alpha."""
    spec = release()
    rolled_back = 0
    for seed in range(200):
        traffic = Traffic(
            1000 + seed, error={"baseline": 0.05, "candidate": 0.05}, score={"baseline": 0.7, "candidate": 0.7}
        )
        for k in range(12):
            traffic.interval(k * INTERVAL, 20)
            now = (k + 1) * INTERVAL
            result = analyse(spec, traffic.window(now - INTERVAL), now=now, step=0, step_started_at=0.0, started_at=0.0)
            if result.decision == "rollback":
                rolled_back += 1
                break
    assert rolled_back / 200 <= spec.strategy.alpha


def test_a_candidate_going_bad_mid_step_is_rolled_back_within_two_intervals() -> None:
    """Good for five intervals (holding: a tight tolerance not yet shown), then failing a fifth of its requests:
    the hard guard's last-interval window sees only the bad requests, however much good data the step holds."""
    spec = release(hard_guards=[{"metric": "error_rate", "ceiling": 0.1, "min_samples": 20}])
    traffic = Traffic(5, error={"baseline": 0.0, "candidate": 0.0}, score={"baseline": 0.7, "candidate": 0.7})
    last = 0.0
    for k in range(5):
        traffic.interval(k * INTERVAL, 40)
        now = (k + 1) * INTERVAL
        good = analyse(spec, traffic.window(last), now=now, step=0, step_started_at=0.0, started_at=0.0)
        assert good.decision in ("hold", "promote"), good.reason
        last = now
    traffic.error["candidate"] = 0.2
    decisions = []
    for k in range(5, 7):
        traffic.interval(k * INTERVAL, 40)
        now = (k + 1) * INTERVAL
        decisions.append(analyse(spec, traffic.window(last), now=now, step=0, step_started_at=0.0, started_at=0.0))
        last = now
    assert "rollback" in [d.decision for d in decisions], [d.reason for d in decisions]
    assert "last interval" in next(d for d in decisions if d.decision == "rollback").reason
