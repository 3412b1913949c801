"""The shadow gate: a release's judged pairs as win/tie/loss, the win rate's interval and the decision.

Each pair counts 1 (the candidate won), 1/2 (a tie) or 0 (it lost); the win rate is their mean and
its interval Wilson's at the spec's confidence (a tie weighs as half a win, so a run of ties stays
as uncertain as coin flips and never passes a gate above 1/2 on its own)::

    decide(PairTally(wins=30, ties=4, losses=6), spec)
    # ShadowVerdict(pairs=40, win_rate=0.8, win_rate_low=0.65, win_rate_high=0.9, decision='pass', ...)

:class:`ShadowEvidence` is what the release's state machine asks to leave the shadow state; it
reads the store, so call it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.delivery.shadow.store import PairTally, ShadowPairStore
from lmdeck.evaluation.stats import wilson_interval
from lmdeck.protocol.shadow import ShadowSpec, ShadowVerdict


def decide(tally: PairTally, spec: ShadowSpec) -> ShadowVerdict:
    """The verdict on ``tally`` under ``spec``'s gate (``min_pairs``, ``min_win_rate``, ``confidence``)."""
    n = tally.pairs
    base = ShadowVerdict(pairs=n, wins=tally.wins, ties=tally.ties, losses=tally.losses, errors=tally.errors)
    if n == 0:
        return base.model_copy(update={"detail": f"no pair judged yet (the gate needs {spec.min_pairs})"})
    score = tally.wins + tally.ties / 2
    rate = score / n
    low, high = wilson_interval(score, n, spec.confidence)
    update: dict[str, object] = {"win_rate": rate, "win_rate_low": low, "win_rate_high": high}
    interval = f"win rate {rate:.3f} [{low:.3f}, {high:.3f}] over {n} pairs"
    if n < spec.min_pairs:
        update["detail"] = f"{interval}: waiting for {spec.min_pairs} pairs"
    elif low >= spec.min_win_rate:
        update.update(decision="pass", detail=f"{interval}: the lower end reaches {spec.min_win_rate}")
    elif high < spec.min_win_rate:
        update.update(decision="fail", detail=f"{interval}: the upper end is below {spec.min_win_rate}")
    else:
        update["detail"] = f"{interval}: the interval still straddles {spec.min_win_rate}"
    return base.model_copy(update=update)


class ShadowEvidence:
    """Verdicts of the releases' shadow stages, from the stored pairs.

    >>> evidence = ShadowEvidence(store, spec_of=lambda release: specs.get(release))  # doctest: +SKIP
    >>> evidence.verdict("reply-v3").decision  # doctest: +SKIP
    'wait'
    """

    def __init__(self, store: ShadowPairStore, spec_of: Callable[[str], ShadowSpec | None]) -> None:
        self.store = store
        self.spec_of = spec_of

    def verdict(self, release: str, spec: ShadowSpec | None = None) -> ShadowVerdict:
        """The gate's verdict for ``release`` (blocking). ``spec`` defaults to the shadow begun for it.

        Raises ``LookupError`` when no spec is given and no shadow was begun for ``release``.
        """
        spec = spec or self.spec_of(release)
        if spec is None:
            raise LookupError(f"release {release!r} has no shadow stage: begin one, or pass its ShadowSpec")
        return decide(self.store.tally(release), spec)
