"""The release state machine, its store (with history) and the service's audited transitions."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.db import Database
from lmdeck.delivery.events import DeliveryEvents
from lmdeck.delivery.machine import IllegalTransition, transition
from lmdeck.delivery.service import ReleaseService
from lmdeck.delivery.store import ReleaseExposure, ReleaseRecord, ReleaseStore, StaleRelease
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol import APIError
from lmdeck.protocol.delivery import ReleaseEvent, ReleaseSpec, ShadowSpec

ADMIN = Principal(key_id="k-admin", role="admin")


def spec(name: str = "reply-v3", **extra: Any) -> ReleaseSpec:
    data: dict[str, Any] = {
        "name": name,
        "route": "support",
        "prompt": "reply",
        "candidate": {"prompt_version": 3},
        "strategy": {"steps": [10, 50, 100], "interval_s": 60, "min_samples": 5},
    }
    return ReleaseSpec.model_validate({**data, **extra})


class FakeMover:
    """Records pointer moves instead of moving registry pointers (a fake for tests)."""

    def __init__(self) -> None:
        self.moves: list[dict[str, Any]] = []
        self.checked: list[tuple[str, str, str]] = []

    async def move(
        self,
        name: str,
        label: str,
        version: int | None,
        *,
        reason: str | None,
        principal: Principal,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        move = {"name": name, "label": label, "version": version, "expected_version": expected_version}
        self.moves.append(move)
        return move

    def check_movable(self, name: str, label: str, principal: Principal) -> None:
        self.checked.append((name, label, principal.role))


def test_spec_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="the last step is 100"):
        spec(strategy={"steps": [5, 50]})
    with pytest.raises(ValueError, match="steps must increase"):
        spec(strategy={"steps": [50, 5, 100]})
    with pytest.raises(ValueError, match="needs `prompt`"):
        ReleaseSpec.model_validate({"name": "x", "route": "r", "candidate": {"prompt_version": 2}})
    with pytest.raises(ValueError, match="cannot be set by a release"):
        spec(candidate={"params": {"messages": []}})
    with pytest.raises(ValueError, match="changes something"):
        spec(candidate={})
    with pytest.raises(ValueError, match="metric is"):
        spec(metrics=[{"name": "vibes"}])
    assert spec(metrics=[{"name": "latency_p95"}, {"name": "score:exact"}]).metrics[1].better == "higher"


def test_transitions_climb_every_step_then_promote() -> None:
    record = ReleaseRecord(spec=spec(), state="pending", created_at=0.0)
    actions = []
    for action, at in (("start", 1.0), ("promote", 2.0), ("promote", 3.0), ("promote", 4.0)):
        event = transition(record, action, now=at, actor="t")  # type: ignore[arg-type]
        actions.append((event.action, event.to_state, event.percent))
    assert actions == [
        ("started", "canary", 10.0),
        ("step", "canary", 50.0),
        ("step", "canary", 100.0),
        ("promoted", "promoted", 100.0),
    ]
    assert record.finished_at == 4.0
    with pytest.raises(IllegalTransition, match="is promoted: it cannot abort"):
        transition(record, "abort", now=5.0, actor="t")


def test_shadow_comes_first_when_specified() -> None:
    record = ReleaseRecord(
        spec=spec(shadow=ShadowSpec(judges=["route:judge"]).model_dump()), state="pending", created_at=0.0
    )
    assert transition(record, "start", now=1.0, actor="t").to_state == "shadow"
    with pytest.raises(IllegalTransition):
        transition(record, "promote", now=2.0, actor="t")
    event = transition(record, "shadow_pass", now=2.0, actor="t")
    assert (event.to_state, record.step, record.step_started_at) == ("canary", 0, 2.0)


def test_store_saves_with_history_and_refuses_a_stale_write(database: Database) -> None:
    store = ReleaseStore(database)
    store.create(ReleaseRecord(spec=spec(), state="pending", created_at=1.0, created_by="key:a"))
    record = store.get("reply-v3")
    assert record is not None and record.revision == 0
    event = transition(record, "start", now=2.0, actor="key:a", evidence={"why": "test"})
    store.save(record, event)
    stale = store.get("reply-v3")
    assert stale is not None and (stale.state, stale.step, stale.revision) == ("canary", 0, 1)
    stale.revision = 0
    with pytest.raises(StaleRelease):
        store.save(stale, None)
    assert [e.action for e in store.history("reply-v3")] == ["started"]
    assert store.history("reply-v3")[0].evidence == {"why": "test"}
    store.add_exposures(
        [
            ReleaseExposure("t1", "reply-v3", "candidate", 0, 200, 10.0, 5.0, 0.001, False, 3.0),
            ReleaseExposure("t2", "reply-v3", "baseline", 0, 500, 12.0, None, 0.0, False, 4.0),
        ]
    )
    assert [e.variant for e in store.exposures("reply-v3", step=0)] == ["candidate", "baseline"]
    assert store.exposures("reply-v3", step=1) == []


async def test_service_audits_each_transition_and_moves_pointers(database: Database) -> None:
    audit = AuditLog(database)
    prompts = FakeMover()
    seen: list[ReleaseEvent] = []
    events = DeliveryEvents()
    events.subscribe(seen.append)
    service = ReleaseService(ReleaseStore(database), prompts=prompts, audit=audit, events=events)
    await service.create(spec(), ADMIN)
    assert prompts.checked == [("reply", "production", "admin")]  # the creator may move what it promotes
    with pytest.raises(APIError) as exc:
        await service.create(spec(), ADMIN)
    assert exc.value.status == 409
    await service.act("reply-v3", "start", principal=ADMIN, now=10.0)
    assert [r.name for r in service.serving()] == ["reply-v3"]
    for at in (20.0, 30.0):
        await service.act("reply-v3", "promote", now=at, evidence={"analysis": at})
    promoted = await service.act("reply-v3", "promote", now=40.0)
    assert promoted["state"] == "promoted"
    assert prompts.moves == [{"name": "reply", "label": "production", "version": 3, "expected_version": None}]
    assert service.serving() == []  # a prompt candidate is carried by the label from now on
    rolled = await service.rollback("reply-v3", "quality alert fired", actor="alert:quality")
    assert rolled["state"] == "rolled_back"
    assert prompts.moves[-1]["expected_version"] == 3  # moved back only if still where the promotion put it
    audited = [(e.action, e.actor) for e in audit.entries(target="release:reply-v3")]
    assert audited == [
        ("release.created", "key:k-admin"),
        ("release.started", "key:k-admin"),
        ("release.step", "system:release-controller"),
        ("release.step", "system:release-controller"),
        ("release.promoted", "system:release-controller"),
        ("release.rolled_back", "system:release-controller"),
    ]
    shown = await service.show("reply-v3")
    assert [e["action"] for e in shown["history"]] == ["started", "step", "step", "promoted", "rolled_back"]
    assert shown["history"][1]["evidence"] == {"analysis": 20.0}
    assert [e.action for e in seen] == ["started", "step", "step", "promoted", "rolled_back"]
    assert "quality alert fired" in str(shown["reason"])


async def test_a_second_live_release_on_a_route_is_refused(database: Database) -> None:
    service = ReleaseService(ReleaseStore(database))
    await service.create(spec("a"), ADMIN)
    await service.create(spec("b"), ADMIN)
    await service.act("a", "start", principal=ADMIN)
    with pytest.raises(APIError, match="is live on route 'support'"):
        await service.act("b", "start", principal=ADMIN)
    await service.act("a", "abort", principal=ADMIN, reason="changed our mind")
    await service.act("b", "start", principal=ADMIN)
