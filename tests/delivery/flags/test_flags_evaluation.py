"""Targeting: the evaluation order, each condition, and percentage rollouts that stick and hold their share."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from scipy.stats import binomtest

from lmdeck.delivery.flags.evaluation import FlagSubject, evaluate, rollout_point
from lmdeck.delivery.flags.live import FlagSnapshot
from lmdeck.delivery.flags.step import RequestFlags
from lmdeck.protocol.flags import FlagSpec
from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptRenderError, PromptTemplate


def spec(**fields: Any) -> FlagSpec:
    return FlagSpec.model_validate({"name": "f", **fields})


def test_a_disabled_flag_serves_its_default_whatever_the_rules() -> None:
    flag = spec(enabled=False, rules=[{"users": ["ada"], "value": True}])
    found = evaluate(flag, FlagSubject(user="ada"))
    assert (found.value, found.reason, found.rule) == (False, "disabled", None)


def test_the_first_matching_rule_wins_then_the_flags_value() -> None:
    flag = spec(
        type="string",
        value="warm",
        default="plain",
        rules=[
            {"keys": ["k1"], "value": "a"},
            {"teams": ["t1"], "users": ["ada"], "value": "b"},  # both must hold
            {"headers": {"X-Beta": "yes"}, "value": "c"},
        ],
    )
    assert evaluate(flag, FlagSubject(key_id="k1", team_id="t1", user="ada")).value == "a"
    assert evaluate(flag, FlagSubject(team_id="t1", user="ada")).rule == 1
    assert evaluate(flag, FlagSubject(team_id="t1", user="bob")).reason == "fallthrough"
    assert evaluate(flag, FlagSubject(headers={"x-beta": "yes"})).value == "c"  # header names ignore case
    assert evaluate(flag, FlagSubject(headers={"x-beta": "no"})).value == "warm"


def test_boolean_flags_default_to_on_when_enabled_and_off_when_disabled() -> None:
    assert evaluate(spec(), FlagSubject()).value is True
    assert evaluate(spec(enabled=False), FlagSubject()).value is False


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "string", "value": "a"},  # no default
        {"type": "number", "value": 1, "default": "x"},
        {"type": "boolean", "value": 1},  # 1 is not a boolean
        {"type": "number", "value": True, "default": 0},  # nor True a number
        {"rules": [{"value": True}]},
        {"kill_switch": True},
        {"kill_switch": True, "type": "string", "value": "a", "default": "b", "routes": ["r"]},
        {"name": "has space"},
    ],
)
def test_specs_that_cannot_be_evaluated_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(**fields)


def test_a_percentage_sticks_to_its_subject_and_only_grows() -> None:
    users = [f"user-{i}" for i in range(2000)]

    def on(percentage: float) -> set[str]:
        flag = spec(value=False, rules=[{"percentage": percentage, "value": True}])
        return {u for u in users if evaluate(flag, FlagSubject(user=u)).value is True}

    ten, twenty_five, fifty = on(10), on(25), on(50)
    assert on(25) == twenty_five  # the same subjects every time
    assert ten <= twenty_five <= fifty  # raising the percentage keeps those already in
    assert on(0) == set() and on(100) == set(users)


@pytest.mark.parametrize("percentage", [5, 25, 50])
def test_a_percentage_serves_its_share(percentage: float) -> None:
    n = 4000
    inside = sum(rollout_point("share", f"user:{i}") < percentage / 100 for i in range(n))
    # An exact binomial test at 0.1%: the hash behaves like a fair draw for each subject.
    assert binomtest(inside, n, percentage / 100).pvalue > 0.001, inside


def test_the_sticky_subject_follows_the_flags_setting() -> None:
    by_team = spec(sticky="team", value=False, rules=[{"percentage": 50, "value": True}])
    # Every user of one team gets the team's answer.
    answers = {evaluate(by_team, FlagSubject(team_id="t9", user=f"u{i}", key_id=f"k{i}")).value for i in range(50)}
    assert len(answers) == 1
    by_user = spec(value=False, rules=[{"percentage": 50, "value": True}])
    # A request without a user sticks to its key.
    keyed = FlagSubject(key_id="k1")
    assert len({evaluate(by_user, keyed).value for _ in range(5)}) == 1
    assert FlagSubject(key_id="k1").sticky_id("user") == "key:k1"
    assert FlagSubject(conversation_id="c", user="u").sticky_id("conversation") == "conversation:c"


def test_a_template_outside_a_request_takes_flag_values_as_a_variable() -> None:
    template = PromptTemplate(PromptVersionSpec(text="{{ flags.tone }} {{ q }}", variables={"q": "string"}))
    assert template.flag_names == frozenset({"tone"})
    assert template.render({"q": "x", "flags": {"tone": "terse"}}) == "terse x"
    with pytest.raises(PromptRenderError, match="give their values as the variable `flags`"):
        template.render({"q": "x"})
    with pytest.raises(PromptRenderError, match="flag tone, which does not exist"):
        template.render({"q": "x", "flags": {}})
    # In a request the request's flags count, not a `flags` variable the caller sends.
    with pytest.raises(PromptRenderError, match="unknown variable: flags"):
        template.bind_with_flags({"q": "x", "flags": {"tone": "loud"}}, {"tone": "terse"})
    assert template.bind_with_flags({"q": "x"}, {"tone": "terse", "other": 1}) == {"q": "x", "flags": {"tone": "terse"}}


def test_a_request_reads_only_its_routes_flags_and_global_ones() -> None:
    snapshot = FlagSnapshot.of(
        1,
        [
            FlagSpec.model_validate({"name": "new-ui", "routes": ["rb"]}),  # team B's flag, on B's route
            FlagSpec.model_validate({"name": "global"}),  # names no route: readable everywhere
            FlagSpec.model_validate({"name": "kill.ra", "routes": ["ra"], "kill_switch": True}),
        ],
    )
    route = ["ra"]
    flags = RequestFlags(snapshot, FlagSubject(user="ada"), route=lambda: route[0])
    # On A's route, B's flag does not exist: it cannot take over a name A's branches or templates read.
    assert "new-ui" not in flags
    with pytest.raises(KeyError):
        flags["new-ui"]
    assert sorted(flags) == ["global", "kill.ra"]
    assert flags["global"] is True
    # Once the request is on B's route, it reads B's flag; a kill switch is read on the route it guards.
    route[0] = "rb"
    assert flags["new-ui"] is True
    assert flags.on_route("kill.ra", "ra") is True
    assert flags.on_route("new-ui", "ra") is True  # read once already: a request keeps what it read
