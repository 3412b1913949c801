"""Evaluating a flag for one request: pure functions over the spec and who is asking.

    subject = FlagSubject(key_id="k1", team_id="team_beta", user="ada")
    evaluate(spec, subject)          # FlagEvaluation(name=..., value=True, reason="rule", rule=0)

The order is the one :mod:`lmdeck.protocol.flags` documents: disabled → ``default``; the first
rule whose every condition holds → its ``value``; otherwise the flag's ``value``. Percentages use
the experiments' sticky hashing (:func:`~lmdeck.evaluation.experiments.assignment.unit_point`)
of ``flag:<name>`` and the subject, so a subject keeps its answer while the percentage only grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lmdeck.evaluation.experiments.assignment import unit_point
from lmdeck.protocol.flags import FlagContext, FlagEvaluation, FlagRule, FlagSpec


@dataclass(frozen=True)
class FlagSubject:
    """Who a request comes from, as flags target it; header names are lower case."""

    key_id: str | None = None
    team_id: str | None = None
    user: str | None = None
    conversation_id: str | None = None
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_context(cls, context: FlagContext) -> FlagSubject:
        return cls(
            key_id=context.key_id,
            team_id=context.team_id,
            user=context.user,
            conversation_id=context.conversation_id,
            headers={k.lower(): v for k, v in context.headers.items()},
        )

    def sticky_id(self, sticky: str) -> str | None:
        """The id a percentage hashes for ``sticky``: ``user`` falls back to the key, the others to nothing."""
        if sticky == "conversation" and self.conversation_id:
            return f"conversation:{self.conversation_id}"
        if sticky == "team" and self.team_id:
            return f"team:{self.team_id}"
        if sticky in ("user", "conversation") and self.user:
            return f"user:{self.user}"
        if self.key_id:
            return f"key:{self.key_id}"
        return None


def rollout_point(flag: str, subject_id: str) -> float:
    """The subject's sticky point in [0, 1) for ``flag``."""
    return unit_point(f"flag:{flag}", subject_id)


def rule_matches(spec: FlagSpec, rule: FlagRule, subject: FlagSubject) -> bool:
    """Whether every condition of ``rule`` holds for ``subject``."""
    if rule.keys is not None and subject.key_id not in rule.keys:
        return False
    if rule.teams is not None and subject.team_id not in rule.teams:
        return False
    if rule.users is not None and subject.user not in rule.users:
        return False
    if rule.headers is not None:
        for name, wanted in rule.headers.items():
            if subject.headers.get(name.lower()) != wanted:
                return False
    if rule.percentage is not None:
        subject_id = subject.sticky_id(spec.sticky) or (f"request:{subject.request_id}" if subject.request_id else None)
        if subject_id is None or rollout_point(spec.name, subject_id) >= rule.percentage / 100.0:
            return False
    return True


def evaluate(spec: FlagSpec, subject: FlagSubject) -> FlagEvaluation:
    """The value ``spec`` gives ``subject``, with the reason (and the matching rule's index)."""
    if not spec.enabled:
        assert spec.default is not None  # the spec's validator fills it
        return FlagEvaluation(name=spec.name, value=spec.default, reason="disabled")
    for index, rule in enumerate(spec.rules):
        if rule_matches(spec, rule, subject):
            return FlagEvaluation(name=spec.name, value=rule.value, reason="rule", rule=index)
    assert spec.value is not None
    return FlagEvaluation(name=spec.name, value=spec.value, reason="fallthrough")
