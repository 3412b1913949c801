"""The release state machine: which action moves a release from which state to which.

::

    pending --start--> shadow --shadow_pass--> canary(0) --promote--> canary(1) ... canary(last) --promote--> promoted
       |                  |                        |                                                          |
       +--abort-----------+--abort / deadline------+--rollback / hard guard / abort ---> rolled_back | aborted  |
                                                                                                              |
    promoted --rollback--> rolled_back (the pointers moved back) <--------------------------------------------+

``hold`` records an analysis without a move. :func:`transition` is pure: it changes the record in
memory and returns the history event; :class:`lmdeck.delivery.service.ReleaseService` saves it,
audits it, moves registry pointers and publishes it.
"""

from __future__ import annotations

from typing import Any, Literal

from lmdeck.delivery.store import ReleaseRecord
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import FINISHED, ReleaseEvent, ReleaseState

Action = Literal["start", "shadow_pass", "promote", "hold", "rollback", "abort"]

#: The states each action may start from.
_FROM: dict[str, frozenset[str]] = {
    "start": frozenset({"pending"}),
    "shadow_pass": frozenset({"shadow"}),
    "promote": frozenset({"canary"}),
    "hold": frozenset({"shadow", "canary"}),
    "rollback": frozenset({"shadow", "canary", "promoted"}),
    "abort": frozenset({"pending", "shadow", "canary"}),
}

#: The history's name for what happened (``promote`` inside the canary is a ``step``).
_PAST = {"start": "started", "shadow_pass": "shadow_passed", "hold": "held", "rollback": "rolled_back"}


class IllegalTransition(APIError):
    """An action the release's state does not allow (a 409 naming the state and what is allowed)."""

    def __init__(self, record: ReleaseRecord, action: str) -> None:
        allowed = sorted(a for a, states in _FROM.items() if record.state in states)
        hint = f"allowed now: {', '.join(allowed)}" if allowed else "it is finished; create a new release"
        super().__init__(
            409,
            f"release {record.name!r} is {record.state}: it cannot {action.replace('_', ' ')} ({hint})",
            code="release_state",
        )


def transition(
    record: ReleaseRecord,
    action: Action,
    *,
    now: float,
    actor: str,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ReleaseEvent:
    """Apply ``action`` to ``record`` in memory and return the history event describing it.

    Raises :class:`IllegalTransition` when the record's state does not allow ``action``.
    """
    if record.state not in _FROM[action]:
        raise IllegalTransition(record, action)
    before: ReleaseState = record.state
    steps = record.spec.strategy.steps
    name = _PAST.get(action, action)
    if action == "start":
        record.started_at = now
        if record.spec.shadow is not None:
            record.state = "shadow"
        else:
            record.state, record.step, record.step_started_at = "canary", 0, now
    elif action == "shadow_pass":
        record.state, record.step, record.step_started_at = "canary", 0, now
    elif action == "promote":
        assert record.step is not None
        if record.step + 1 < len(steps):
            record.step += 1
            record.step_started_at = now
            name = "step"
        else:
            record.state = "promoted"
            name = "promoted"
    elif action == "rollback":
        record.state = "rolled_back"
    elif action == "abort":
        record.state = "aborted"
        name = "aborted"
    if record.state in FINISHED and action != "hold":
        record.finished_at = now
    if action != "hold":
        record.reason = reason
    return ReleaseEvent(
        release=record.name,
        at=now,
        action=name,
        from_state=before,
        to_state=record.state,
        step=record.step,
        percent=record.percent,
        actor=actor,
        reason=reason,
        evidence=evidence,
    )
