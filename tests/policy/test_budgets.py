"""Budgets: exact under concurrency, per key and per team, soft-limit alerts, spend reloaded at start.

Amounts are whole micro-dollars: what is spent, reserved and left is compared exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from lmdeck.policy.budgets import Budget, window_of
from lmdeck.policy.ledger import BudgetExceeded, MemoryBudgetLedger
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore
from policy.deck import ADMIN_KEY, auth, fake_route, policy_settings, served_deck, started_deck

#: "hi" as one user message: a prompt bound of 2 bytes + 7 format tokens; max_tokens 50.
#: Worst case = 9 x $0.001 + 50 x $0.002 ($0.109); the fake reports exactly that usage, so a request costs it.
ONE_REQUEST = 109_000
ONE_REQUEST_USD = 9 * 0.001 + 50 * 0.002
DOLLAR = 1_000_000


def budget(limit: int, *, scope: str = "key", subject: str = "k1", period: str = "month", soft: float = 0.8) -> Budget:
    return Budget(f"b-{scope}-{subject}-{period}", scope, subject, period, limit, soft, 0.0, 0.0)  # type: ignore[arg-type]


async def test_the_ledger_refuses_what_does_not_fit_and_counts_what_settles() -> None:
    ledger = MemoryBudgetLedger()
    ledger.set_budgets([budget(DOLLAR)])
    holds = [await ledger.reserve([("key", "k1")], 300_000) for _ in range(3)]
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([("key", "k1")], 300_000)
    assert "month budget of key 'k1'" in str(refused.value) and "$0.100000 left of $1.000000" in str(refused.value)
    for hold in holds:
        await ledger.settle(hold, 100_000)
    status = ledger.status("b-key-k1-month")
    assert status is not None
    assert status["spent_micros"] == 300_000 and status["reserved_micros"] == 0
    assert status["spent"] == 0.3 and status["reserved"] == 0
    await ledger.reserve([("key", "k1")], 700_000)  # what settled below its reservation is free again
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([("key", "k1")], 1)  # and the budget is used up to the micro-dollar


async def test_many_reserve_and_settle_cycles_leave_exactly_nothing_reserved() -> None:
    """With floating-point dollars, 0.1 + 0.2 - 0.3 left a budget with ``reserved: 5.55e-17``; in
    micro-dollars every cycle cancels exactly, whatever the amounts and their order."""
    ledger = MemoryBudgetLedger()
    ledger.set_budgets([budget(10**12)])
    amounts = [100_000, 200_000, 300_000, 1, 7, 109_000, 333_333, 999_999]
    spent = 0
    for cycle in range(500):
        holds = [await ledger.reserve([("key", "k1")], amount) for amount in amounts]
        for i, hold in enumerate(reversed(holds)):
            actual = (cycle * 31 + i * 17) % 1000
            spent += actual
            await ledger.settle(hold, actual)
    status = ledger.status("b-key-k1-month")
    assert status is not None
    assert status["reserved_micros"] == 0 and status["reserved"] == 0
    assert status["spent_micros"] == spent and status["remaining_micros"] == 10**12 - spent


async def test_a_request_is_held_to_every_budget_of_its_key_and_team() -> None:
    ledger = MemoryBudgetLedger()
    ledger.set_budgets([budget(10 * DOLLAR), budget(DOLLAR, scope="team", subject="t1", period="day")])
    await ledger.reserve([("key", "k1"), ("team", "t1")], 600_000)
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve([("key", "k1"), ("team", "t1")], 600_000)
    assert refused.value.budget.scope == "team"
    assert ledger.status("b-key-k1-month")["reserved_micros"] == 600_000  # type: ignore[index]


async def test_a_new_period_starts_from_zero() -> None:
    now = [time.time()]
    ledger = MemoryBudgetLedger(clock=lambda: now[0])
    ledger.set_budgets([budget(DOLLAR, period="day")])
    await ledger.settle(await ledger.reserve([("key", "k1")], DOLLAR), DOLLAR)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([("key", "k1")], 100_000)
    now[0] = window_of("day", now[0])[1] or 0.0  # midnight UTC
    await ledger.reserve([("key", "k1")], 100_000)


async def test_soft_limit_and_exhaustion_raise_one_alert_each(caplog: pytest.LogCaptureFixture) -> None:
    ledger = MemoryBudgetLedger()
    ledger.set_budgets([budget(DOLLAR, soft=0.5)])
    seen = []
    ledger.alerts.listeners.append(seen.append)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            await ledger.settle(await ledger.reserve([("key", "k1")], 0), 300_000)
    assert [a.kind for a in seen] == ["soft_limit", "exhausted"]
    assert [a.spent for a in seen] == [600_000, 1_200_000]
    assert "budget alert (soft_limit)" in caplog.text and "$0.600000 of $1.000000" in caplog.text


async def test_spend_exactly_at_the_soft_limit_raises_its_alert() -> None:
    ledger = MemoryBudgetLedger()
    ledger.set_budgets([budget(3 * 109_000, soft=0.7)])  # 0.7 of 327000 is 228900 exactly
    seen = []
    ledger.alerts.listeners.append(seen.append)
    await ledger.settle(await ledger.reserve([("key", "k1")], 0), 228_899)
    assert seen == []
    await ledger.settle(await ledger.reserve([("key", "k1")], 0), 1)
    assert [a.kind for a in seen] == ["soft_limit"]


async def test_200_concurrent_requests_admit_exactly_the_budget(tmp_path: Path) -> None:
    fits = 20
    # Sent as floating-point dollars (2.1799999999999997), kept as the micro-dollars they mean.
    limit = fits * ONE_REQUEST_USD
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=9, completion_tokens="max", delay=0.05)])
    async with served_deck(settings) as deck:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=deck.url, limits=limits, timeout=60) as http:
            created = await http.post("/api/keys", json={"name": "spender"}, headers=auth(ADMIN_KEY))
            key, key_id = created.json()["key"], created.json()["id"]
            put = await http.put(
                "/api/budgets",
                json={"scope": "key", "subject_id": key_id, "period": "month", "limit_usd": limit},
                headers=auth(ADMIN_KEY),
            )
            assert put.status_code == 200, put.text
            # Open the 200 connections first, so that the 200 requests below arrive together.
            await asyncio.gather(*(http.get("/health/live") for _ in range(200)))
            body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
            responses = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body, headers=auth(key)) for _ in range(200))
            )
            statuses = [r.status_code for r in responses]
            assert put.json()["limit_micros"] == fits * ONE_REQUEST
            assert set(statuses) == {200, 429}
            refused = next(r for r in responses if r.status_code == 429).json()["error"]
            assert refused["code"] == refused["type"] == "insufficient_quota"
            assert statuses.count(200) == fits
            recorded = sum(t.cost_micros for t in deck.sink.records if t.key_id == key_id)
            assert recorded == fits * ONE_REQUEST
            status = (await http.get("/api/budgets", headers=auth(ADMIN_KEY))).json()["data"][0]
            assert status["spent_micros"] == recorded and status["reserved_micros"] == 0
            assert status["remaining_micros"] == 0 and status["reserved"] == 0


async def test_a_team_budget_is_shared_by_the_team_keys_and_streams_settle(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=9, completion_tokens="max")])
    async with started_deck(settings) as deck:
        team = (await deck.admin("POST", "/api/teams", json={"name": "ml"})).json()
        a = await deck.new_key(name="a", team_id=team["id"])
        b = await deck.new_key(name="b", team_id=team["id"])
        put = await deck.admin(
            "PUT",
            "/api/budgets",
            json={"scope": "team", "subject_id": team["id"], "period": "day", "limit_micros": 3 * ONE_REQUEST},
        )
        assert put.status_code == 200
        assert (await deck.chat(a["key"], max_tokens=50)).status_code == 200
        streamed = await deck.chat(b["key"], max_tokens=50, stream=True)
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        assert (await deck.chat(a["key"], max_tokens=50)).status_code == 200
        assert (await deck.chat(b["key"], max_tokens=50)).status_code == 429
        status = (await deck.admin("GET", f"/api/budgets/{put.json()['id']}")).json()
        assert status["spent_micros"] == 3 * ONE_REQUEST
        costs = [t.cost_micros for t in deck.sink.records if t.status_code == 200]
        assert costs == [ONE_REQUEST] * 3
        viewer = await deck.new_key(name="v", role="viewer", team_id=team["id"])
        outsider = await deck.new_key(
            name="o",
            role="viewer",
            team_id=(await deck.admin("POST", "/api/teams", json={"name": "other"})).json()["id"],
        )
        assert len((await deck.http.get("/api/budgets", headers=auth(viewer["key"]))).json()["data"]) == 1
        assert (await deck.http.get("/api/budgets", headers=auth(outsider["key"]))).json()["data"] == []
        hidden = await deck.http.get(f"/api/budgets/{put.json()['id']}", headers=auth(outsider["key"]))
        assert hidden.status_code == 404


async def test_a_team_budget_set_by_the_teams_name_is_kept_under_its_id_and_enforced(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=9, completion_tokens="max")])
    async with started_deck(settings) as deck:
        team = (await deck.admin("POST", "/api/teams", json={"name": "support"})).json()
        key = await deck.new_key(name="s", team_id=team["id"])
        body = {"scope": "team", "subject_id": "support", "period": "day", "limit_micros": ONE_REQUEST}
        put = await deck.admin("PUT", "/api/budgets", json=body)
        assert put.status_code == 200 and put.json()["subject_id"] == team["id"]
        again = await deck.admin("PUT", "/api/budgets", json=body | {"subject_id": team["id"]})
        assert again.json()["id"] == put.json()["id"]
        assert (await deck.chat(key["key"], max_tokens=50)).status_code == 200
        assert (await deck.chat(key["key"], max_tokens=50)).status_code == 429
        viewer = await deck.new_key(name="v", role="viewer", team_id=team["id"])
        seen = (await deck.http.get("/api/budgets", headers=auth(viewer["key"]))).json()["data"]
        assert [b["id"] for b in seen] == [put.json()["id"]]


async def test_budget_changes_are_audited(tmp_path: Path) -> None:
    async with started_deck(policy_settings(tmp_path)) as deck:
        key = await deck.new_key(name="k")
        body = {"scope": "key", "subject_id": key["id"], "period": "total", "limit_usd": 5}
        first = (await deck.admin("PUT", "/api/budgets", json=body)).json()
        second = (await deck.admin("PUT", "/api/budgets", json=body | {"limit_usd": 7})).json()
        assert first["id"] == second["id"] and second["limit_usd"] == 7 and second["soft_limit"] == 0.8
        assert (await deck.admin("DELETE", f"/api/budgets/{first['id']}")).status_code == 204
        actions = [e["action"] for e in (await deck.admin("GET", "/api/audit")).json()["data"]]
        assert actions[-3:] == ["budget.created", "budget.changed", "budget.deleted"]
        bad = await deck.admin("PUT", "/api/budgets", json=body | {"subject_id": "key_nope"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "subject_id"
        negative = await deck.admin("PUT", "/api/budgets", json=body | {"limit_usd": -1})
        assert negative.status_code == 400
        both = await deck.admin("PUT", "/api/budgets", json=body | {"limit_micros": 5_000_000})
        assert both.status_code == 400 and "exactly one of limit_usd" in both.json()["error"]["message"]
        exact = (await deck.admin("PUT", "/api/budgets", json={**body, "limit_usd": None, "limit_micros": 1})).json()
        assert exact["limit_micros"] == 1 and exact["limit_usd"] == 0.000001


async def test_spend_already_recorded_counts_after_a_restart(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path)
    async with started_deck(settings) as deck:
        key = await deck.new_key(name="k")
        await deck.admin(
            "PUT", "/api/budgets", json={"scope": "key", "subject_id": key["id"], "period": "month", "limit_usd": 1.0}
        )
        # What the trace writer stored before the restart (traces and their rollups).
        SQLTraceStore(deck.gateway.db).insert(
            [TraceRecord(id=f"t{cost}", key_id=key["id"], cost_micros=cost) for cost in (250_000, 500_000)]
        )
    async with started_deck(settings) as restarted:
        status = (await restarted.admin("GET", "/api/budgets")).json()["data"][0]
        assert status["spent_micros"] == 750_000 and status["spent"] == 0.75
        assert (await restarted.chat(key["key"], max_tokens=200)).status_code == 429


async def test_a_stream_dropped_by_its_client_releases_its_reservation(tmp_path: Path) -> None:
    import gc

    from lmdeck.pipeline.context import RequestContext, Streamed
    from lmdeck.protocol import ChatCompletionRequest
    from lmdeck.protocol.traces import TraceRecord

    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=9, completion_tokens="max")])
    async with started_deck(settings) as deck:
        key = await deck.new_key(name="dropper")
        put = await deck.admin(
            "PUT", "/api/budgets", json={"scope": "key", "subject_id": key["id"], "period": "day", "limit_usd": 1.0}
        )
        body = ChatCompletionRequest.model_validate(
            {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50, "stream": True}
        )
        ctx = RequestContext(
            kind="chat",
            body=body,
            request_id="drop",
            trace=TraceRecord(),
            route_name="fake-gpt",
            client_token=key["key"],
        )
        result = await deck.gateway.pipeline.run(ctx)
        assert isinstance(result, Streamed)
        await anext(result.chunks)
        assert deck.policy.ledger.status(put.json()["id"])["reserved_micros"] == ONE_REQUEST  # type: ignore[index]
        await result.chunks.aclose()  # type: ignore[attr-defined]  # the client went away
        for _ in range(5):
            gc.collect()
            await asyncio.sleep(0)
        status = deck.policy.ledger.status(put.json()["id"])
        assert status is not None
        assert status["reserved_micros"] == 0
        assert 0 < status["spent_micros"] < ONE_REQUEST  # priced from what was sent: the prompt and one piece
