"""``/api/registry/apply`` with ``guardrails.teams``/``guardrails.keys``: who may apply them, what is
refused, the audit entry, and the running gateway checking the team's and key's requests at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.settings import Settings

from .conftest import Deck, add_team_keys

DEFINITIONS = {"no-forbidden": {"type": "regex", "options": {"words": ["forbidden"]}}}
BLUE_BLOCKED: dict[str, Any] = {
    "guardrails": {"teams": {"team_blue": {"input": [{"use": "no-forbidden", "action": "block"}]}}}
}
PROMPT = [{"role": "user", "content": "say the forbidden word"}]


@pytest.fixture
async def guarded(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    """Keys of teams blue and red; the guardrail ``no-forbidden`` is defined but attached to nothing."""
    async with start_deck(make_settings(guardrails={"definitions": DEFINITIONS})) as deck:
        add_team_keys(deck)
        yield deck


async def apply(deck: Deck, doc: dict[str, Any], role: str = "admin", **flags: Any) -> Any:
    return await deck.client.post("/api/registry/apply", json={**doc, **flags}, headers=deck.auth(role))


async def test_a_teams_applied_guardrail_checks_its_keys_at_once_and_no_one_elses(guarded: Deck) -> None:
    before = await guarded.chat("blue-inference", model="plain", messages=PROMPT)
    assert before.status_code == 200, before.text

    applied = (await apply(guarded, BLUE_BLOCKED)).json()
    assert applied["applied"] is True
    assert [c["description"] for c in applied["changes"]] == ["+ team guardrails team_blue"]

    blocked = await guarded.chat("blue-inference", model="plain", messages=PROMPT)
    assert blocked.status_code == 400
    error = blocked.json()["error"]
    assert error["code"] == "content_policy_violation" and "'no-forbidden'" in error["message"]
    other_team = await guarded.chat("red-inference", model="plain", messages=PROMPT)
    assert other_team.status_code == 200, other_team.text

    again = (await apply(guarded, BLUE_BLOCKED)).json()
    assert again["summary"] == "no changes" and again["applied"] is False


async def test_a_keys_attachment_by_key_name_is_applied_and_pruned(guarded: Deck) -> None:
    doc = {"guardrails": {"keys": {"red inference": {"input": [{"use": "no-forbidden", "action": "block"}]}}}}
    await apply(guarded, doc)
    assert (await guarded.chat("red-inference", model="plain", messages=PROMPT)).status_code == 400
    assert (await guarded.chat("red-developer", model="plain", messages=PROMPT)).status_code == 200

    pruned = (await apply(guarded, {}, prune=True)).json()
    assert [c["description"] for c in pruned["changes"]] == ["- key guardrails red inference"]
    assert (await guarded.chat("red-inference", model="plain", messages=PROMPT)).status_code == 200


async def test_only_admins_change_a_teams_guardrails(guarded: Deck) -> None:
    plan = (await apply(guarded, BLUE_BLOCKED, role="developer", dry_run=True)).json()
    assert plan["changes"][0]["needs_admin"] is True
    for role in ("developer", "blue-developer"):
        refused = await apply(guarded, BLUE_BLOCKED, role=role)
        assert refused.status_code == 403
        assert "team guardrails team_blue" in refused.json()["error"]["message"]
    assert (await guarded.chat("blue-inference", model="plain", messages=PROMPT)).status_code == 200


async def test_an_attachment_naming_an_undefined_guardrail_is_a_400_naming_it(guarded: Deck) -> None:
    doc = {"guardrails": {"teams": {"team_blue": {"input": [{"use": "nothing-like-this"}]}}}}
    for flags in ({"dry_run": True}, {}):
        refused = await apply(guarded, doc, **flags)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert "team 'team_blue': no guardrail named 'nothing-like-this'" in error["message"]
        assert "defined: no-forbidden" in error["message"]
        assert error["param"] == "guardrails.teams.team_blue"
    definitions = {"guardrails": {"definitions": DEFINITIONS}}
    not_appliable = await apply(guarded, definitions)
    assert not_appliable.status_code in (400, 422)  # definitions are the gateway's own configuration


async def test_the_change_is_in_the_audit_log_with_the_attachment(guarded: Deck) -> None:
    await apply(guarded, BLUE_BLOCKED)
    audit = guarded.gateway.policy.audit
    entry = [e for e in audit.entries(limit=1000) if e.action == "config.applied"][-1]
    after = entry.to_dict()["after"]
    assert after["changes"] == ["+ team guardrails team_blue"]
    (change,) = after["guardrails"]
    assert change["name"] == "team_blue" and change["detail"]["to"]["input"][0]["use"] == "no-forbidden"
    assert audit.verify().ok
