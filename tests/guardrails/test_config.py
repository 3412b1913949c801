"""The guardrail configuration: shape errors from the settings, cross-references from the registry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lmdeck.guardrails.base import GuardResources
from lmdeck.guardrails.config import GuardrailConfig, config_problems
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.guardrails import GuardrailAttachment
from lmdeck.settings import ConfigError, Settings

from .guarded import test_registry


def settings(guardrails: dict[str, Any], route_guardrails: dict[str, Any] | None = None) -> Settings:
    route: dict[str, Any] = {"name": "support", "targets": [{"model": "m"}]}
    if route_guardrails is not None:
        route["guardrails"] = route_guardrails
    return Settings.model_validate({"default_routes": False, "guardrails": guardrails, "routes": [route]})


def problems(guardrails: dict[str, Any], route_guardrails: dict[str, Any] | None = None) -> list[tuple[Any, str]]:
    return [(p.path, p.message) for p in config_problems(settings(guardrails, route_guardrails), test_registry())]


def test_a_valid_configuration_has_no_problems() -> None:
    assert (
        problems({"definitions": {"a": {"type": "regex", "options": {"words": ["x"]}}}}, {"input": [{"use": "a"}]})
        == []
    )


def test_unknown_type_bad_options_and_unknown_names_are_placed() -> None:
    found = problems(
        {
            "definitions": {"a": {"type": "nope"}, "b": {"type": "regex", "options": {"colour": 1}}},
            "data_policy": {"restricted": ["zzz"], "route": "nowhere"},
        },
        {"input": [{"use": "missing"}, {"use": "a", "action": "fallback", "route": "elsewhere"}]},
    )
    paths = {path: message for path, message in found}
    assert "unknown guardrail type 'nope'" in paths[("guardrails", "definitions", "a", "type")]
    assert "colour" in paths[("guardrails", "definitions", "b", "options")]
    assert "no guardrail named 'missing'" in paths[("routes", 0, "guardrails", "input", 0, "use")]
    assert "no route named 'elsewhere'" in paths[("routes", 0, "guardrails", "input", 1, "route")]
    assert ("guardrails", "data_policy", "restricted", 0) in paths
    assert ("guardrails", "data_policy", "route") in paths


def test_a_guardrail_used_on_a_stage_it_does_not_check_is_a_problem() -> None:
    found = problems({"definitions": {"i": {"type": "input_only"}}}, {"output": [{"use": "i", "action": "flag"}]})
    assert found == [
        (
            ("routes", 0, "guardrails", "output", 0, "use"),
            "guardrail 'i' (type 'input_only') checks only input, not output",
        )
    ]


@pytest.mark.parametrize(
    ("use", "fix"),
    [
        ({"use": "a", "action": "fallback"}, "needs `route`"),
        ({"use": "a", "action": "block", "mode": "async"}, "can only flag"),
        ({"use": "a", "action": "block", "route": "x"}, "only for action `fallback`"),
    ],
)
def test_inconsistent_uses_are_refused_by_the_schema(use: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValidationError, match=fix):
        settings({}, {"input": [use]})


def test_output_fallback_is_refused() -> None:
    with pytest.raises(ValidationError, match="input action"):
        settings({}, {"output": [{"use": "a", "action": "fallback", "route": "x"}]})


def test_build_raises_every_problem_at_once() -> None:
    with pytest.raises(ConfigError, match=r"(?s)nope.*missing"):
        GuardrailConfig.build(
            settings({"definitions": {"a": {"type": "nope"}}}, {"input": [{"use": "missing"}]}),
            test_registry(),
            GuardResources(),
        )


def test_team_names_and_ids_both_select_a_teams_attachment() -> None:
    s = settings(
        {
            "definitions": {"a": {"type": "regex", "options": {"words": ["x"]}}},
            "teams": {"search": {"input": [{"use": "a"}]}},
        }
    )
    config = GuardrailConfig.build(s, test_registry(), GuardResources())
    config.team_name = lambda team_id: "search" if team_id == "team_9" else None
    plan = config.plan_for(s.routes[0], Principal(key_id="k", role="inference", team_id="team_9"))
    assert [a.name for a in plan.input] == ["a"]
    assert config.plan_for(s.routes[0], Principal(key_id="k", role="inference")).empty


def test_an_attachment_may_override_the_definitions_options() -> None:
    words = {"definitions": {"a": {"type": "regex", "options": {"words": ["darn"]}}}}
    s = settings(words, {"input": [{"use": "a", "options": {"words": ["heck"]}}], "output": [{"use": "a"}]})
    config = GuardrailConfig.build(s, test_registry(), GuardResources())
    plan = config.plan_for(s.routes[0], None)
    assert plan.input[0].guardrail is not plan.output[0].guardrail
    assert plan.input[0].guardrail is config.plan_for(s.routes[0], None).input[0].guardrail  # built once


async def test_the_override_is_what_runs() -> None:
    from lmdeck.guardrails.base import GuardContext

    words = {"definitions": {"a": {"type": "regex", "options": {"words": ["darn"]}}}}
    s = settings(words, {"input": [{"use": "a", "options": {"words": ["heck"]}}]})
    config = GuardrailConfig.build(s, test_registry(), GuardResources())
    guard = config.plan_for(s.routes[0], None).input[0].guardrail
    assert (await guard.check("heck", GuardContext("input"))).blocked
    assert (await guard.check("darn", GuardContext("input"))).passed


def test_a_bad_override_is_a_problem_at_its_place() -> None:
    found = problems(
        {"definitions": {"a": {"type": "regex", "options": {"words": ["x"]}}}},
        {"input": [{"use": "a", "options": {"finding": "explode"}}]},
    )
    assert [path for path, _ in found] == [("routes", 0, "guardrails", "input", 0, "options")]


def test_an_applied_attachment_replaces_the_config_files_for_its_team_or_key() -> None:
    s = settings(
        {
            "definitions": {
                "a": {"type": "regex", "options": {"words": ["x"]}},
                "b": {"type": "regex", "options": {"words": ["y"]}},
            },
            "teams": {"team_9": {"input": [{"use": "a"}]}},
        }
    )
    config = GuardrailConfig.build(s, test_registry(), GuardResources())
    applied: dict[str, Any] = {"teams": {}, "keys": {}}
    config.applied = lambda: (applied["teams"], applied["keys"])
    member = Principal(key_id="k", role="inference", team_id="team_9")
    assert [a.name for a in config.plan_for(s.routes[0], member).input] == ["a"]

    applied["teams"] = {"team_9": GuardrailAttachment.model_validate({"input": [{"use": "b", "action": "flag"}]})}
    applied["keys"] = {"k": GuardrailAttachment.model_validate({"output": [{"use": "a"}]})}
    plan = config.plan_for(s.routes[0], member)
    assert [(a.name, a.use.action) for a in plan.input] == [("b", "flag")]  # read per request: no rebuild
    assert [a.name for a in plan.output] == ["a"]
    outsider = Principal(key_id="other", role="inference", team_id="team_1")
    assert config.plan_for(s.routes[0], outsider).empty
