"""The shadow gate: win/tie/loss counts, the win rate's Wilson interval (ties half a win), the decision."""

from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.delivery.shadow.evidence import ShadowEvidence, decide
from lmdeck.delivery.shadow.store import PairTally, ShadowPairStore
from lmdeck.protocol.shadow import ShadowPair, ShadowSpec

SPEC = ShadowSpec(judges=["route:judge"], min_pairs=20, min_win_rate=0.5)


def test_waits_for_min_pairs_even_when_every_pair_is_won() -> None:
    verdict = decide(PairTally(wins=19), SPEC)
    assert verdict.decision == "wait" and verdict.pairs == 19
    assert verdict.win_rate == 1.0 and verdict.win_rate_low is not None and verdict.win_rate_low > 0.5
    assert "waiting for 20 pairs" in (verdict.detail or "")


def test_passes_fails_or_waits_on_the_interval() -> None:
    passed = decide(PairTally(wins=30, ties=4, losses=6), SPEC)
    assert passed.decision == "pass" and passed.win_rate == pytest.approx(0.8)
    assert passed.win_rate_low is not None and passed.win_rate_low >= 0.5
    failed = decide(PairTally(wins=3, ties=4, losses=33), SPEC)
    assert failed.decision == "fail" and failed.win_rate_high is not None and failed.win_rate_high < 0.5
    close = decide(PairTally(wins=12, ties=2, losses=10), SPEC)
    assert close.decision == "wait" and "straddles" in (close.detail or "")


def test_ties_count_half_and_never_pass_a_gate_above_one_half_alone() -> None:
    verdict = decide(PairTally(ties=400), SPEC)
    assert verdict.win_rate == 0.5 and verdict.decision == "wait"
    lenient = decide(PairTally(ties=400), SPEC.model_copy(update={"min_win_rate": 0.4}))
    assert lenient.decision == "pass"


def test_no_pairs_no_rate() -> None:
    verdict = decide(PairTally(errors=3), SPEC)
    assert verdict.decision == "wait" and verdict.win_rate is None and verdict.errors == 3


def test_evidence_reads_the_stored_pairs(database: Database) -> None:
    store = ShadowPairStore(database)
    outcomes = ["win"] * 25 + ["tie"] * 2 + ["loss"] * 3 + [None]
    for i, outcome in enumerate(outcomes):
        store.add(
            ShadowPair(
                id=f"p{i}",
                release="r1",
                baseline_trace_id=f"b{i}",
                candidate_trace_id=f"c{i}",
                outcome=outcome,  # type: ignore[arg-type]
                cost_micros=10,
                error=None if outcome else "judging failed: no verdict",
                created_at=float(i),
            )
        )
    store.add(
        ShadowPair(
            id="other", release="r2", baseline_trace_id=None, candidate_trace_id=None, outcome="loss", created_at=0.0
        )
    )
    tally = store.tally("r1")
    assert (tally.wins, tally.ties, tally.losses, tally.errors, tally.cost_micros) == (25, 2, 3, 1, 310)
    evidence = ShadowEvidence(store, {"r1": SPEC}.get)
    verdict = evidence.verdict("r1")
    assert verdict.decision == "pass" and verdict.pairs == 30
    assert [p.id for p in store.recent("r1", 2)] == ["p30", "p29"]
    with pytest.raises(LookupError, match="no shadow stage"):
        evidence.verdict("r2")
    assert evidence.verdict("r2", SPEC).losses == 1
