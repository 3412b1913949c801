from __future__ import annotations

from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.registry.plan import CurrentState, Declared, compute_plan
from lmdeck.registry.sql import spec_digest
from lmdeck.settings import RouteConfig

PROTECTED = {"production": "admin"}


def declared(**doc: object) -> Declared:
    return Declared.model_validate(doc)


def empty() -> CurrentState:
    return CurrentState(file_routes={}, applied_routes={}, versions={}, pointers={}, descriptions={})


DOC = {
    "routes": [{"name": "support", "targets": ["registry:support-bot@production"]}],
    "models": [
        {
            "name": "support-bot",
            "versions": [{"version": 1, "model": "m-1"}, {"version": 2, "model": "m-2"}],
            "aliases": {"production": 1, "staging": 2},
        }
    ],
}


def test_first_plan_creates_everything_and_flags_admin_changes() -> None:
    plan = compute_plan(declared(**DOC), empty(), protected=PROTECTED)
    lines = [c.describe() for c in plan.changes]
    assert lines == [
        "+ route support",
        "+ model support-bot",
        "+ model version support-bot v1",
        "+ model version support-bot v2",
        "→ alias support-bot@production: unset → v1",
        "→ alias support-bot@staging: unset → v2",
    ]
    assert [c.describe() for c in plan.needs_admin] == [lines[0], lines[4]]
    assert plan.conflicts == []


def test_matching_state_plans_no_changes() -> None:
    doc = declared(**DOC)
    current = empty()
    current.file_routes["support"] = RouteConfig.model_validate(DOC["routes"][0])  # type: ignore[index]
    current.descriptions[("model", "support-bot")] = None
    current.versions[("model", "support-bot")] = {
        1: spec_digest(ModelVersionSpec(model="m-1")),
        2: spec_digest(ModelVersionSpec(model="m-2")),
    }
    current.pointers[("model", "support-bot")] = {"production": 1, "staging": 2, "canary": 2}
    plan = compute_plan(doc, current, protected=PROTECTED)
    assert plan.changes == [] and plan.summary() == "no changes"
    pruned = compute_plan(doc, current, protected=PROTECTED, prune=True)
    assert [c.describe() for c in pruned.changes] == ["- alias support-bot@canary (was v2)"]


def test_a_changed_stored_version_is_a_conflict_not_a_rewrite() -> None:
    current = empty()
    current.descriptions[("model", "support-bot")] = None
    current.versions[("model", "support-bot")] = {1: spec_digest(ModelVersionSpec(model="something-else"))}
    plan = compute_plan(declared(**DOC), current, protected=PROTECTED)
    assert any("v1 differs" in c and "immutable" in c for c in plan.conflicts)


def test_route_update_names_the_fields_that_change() -> None:
    current = empty()
    current.applied_routes["support"] = RouteConfig.model_validate(
        {"name": "support", "targets": ["registry:support-bot@staging"]}
    )
    plan = compute_plan(declared(routes=DOC["routes"]), current, protected=PROTECTED)
    (change,) = plan.changes
    assert change.describe() == "~ route support (targets changed)"
    assert change.detail["to"]["targets"][0]["model"] == "support-bot@production"


def test_alias_to_an_unknown_version_is_a_conflict() -> None:
    doc = declared(models=[{"name": "m", "versions": [{"version": 1, "model": "x"}], "aliases": {"production": 3}}])
    plan = compute_plan(doc, empty(), protected=PROTECTED)
    assert plan.conflicts == ["m@production points at v3, which is neither stored nor declared"]


GUARDED = {
    "guardrails": {
        "teams": {"support": {"input": [{"use": "pii", "action": "mask"}]}},
        "keys": {"ci-bot": {"output": [{"use": "no-swear", "action": "flag"}]}},
    }
}


def test_teams_and_keys_guardrails_are_planned_as_admin_changes() -> None:
    plan = compute_plan(declared(**GUARDED), empty(), protected=PROTECTED)
    assert [c.describe() for c in plan.changes] == ["+ team guardrails support", "+ key guardrails ci-bot"]
    assert plan.needs_admin == plan.changes
    assert plan.changes[0].detail["to"]["input"][0] == {
        "use": "pii",
        "action": "mask",
        "route": None,
        "mode": "sync",
        "on_error": None,
        "timeout_s": None,
        "options": {},
    }


def test_a_guardrail_attachment_like_the_live_one_is_no_change_and_a_different_one_an_update() -> None:
    doc = declared(**GUARDED)
    current = empty()
    current.file_guardrails["teams"] = dict(doc.guardrails.teams)  # from the gateway's config file
    current.applied_guardrails["keys"] = dict(doc.guardrails.keys)
    assert compute_plan(doc, current, protected=PROTECTED).changes == []

    stricter = declared(guardrails={"teams": {"support": {"input": [{"use": "pii", "action": "block"}]}}})
    (change,) = compute_plan(stricter, current, protected=PROTECTED).changes
    assert change.describe() == "~ team guardrails support (input changed)"
    assert change.detail["from"]["input"][0]["action"] == "mask"
    assert change.detail["to"]["input"][0]["action"] == "block"


def test_prune_removes_applied_guardrail_attachments_only() -> None:
    doc = declared(**GUARDED)
    current = empty()
    current.file_guardrails["teams"] = {"file-team": doc.guardrails.teams["support"]}
    current.applied_guardrails["teams"] = dict(doc.guardrails.teams)
    current.applied_guardrails["keys"] = dict(doc.guardrails.keys)
    plan = compute_plan(declared(), current, protected=PROTECTED, prune=True)
    assert [c.describe() for c in plan.changes] == ["- team guardrails support", "- key guardrails ci-bot"]
    assert plan.changes[0].detail["from"]["input"][0]["use"] == "pii"
    assert compute_plan(declared(), current, protected=PROTECTED).changes == []
