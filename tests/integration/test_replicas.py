"""Three ``lmdeck serve`` replicas on one PostgreSQL and one Redis: limits, budgets and breakers are
exact across them, a killed replica loses no acknowledged trace, the leader's jobs move, and a Redis
that dies mid-load is survived by the declared failure policy.

Each replica is its own process with its own data directory (and so its own trace spool); they share
the store (``database_url``) and ``redis.url``. Requests go round-robin over the three. Verdicts are
about counts and states, never about how fast the machine is: where a limit refills with time, the
bound allows for the time the test actually took.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.db.scratch import scratch_database
from lmdeck.testing.redis_server import RedisServer
from lmdeck.testing.servers import (
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
    start_gateway,
)

POSTGRES = os.environ.get("LMDECK_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to run replicas on PostgreSQL"
)

#: US dollars per 1M tokens of the fake upstream's model.
PRICE = {"input": 100.0, "output": 200.0}
LEADS = re.compile(r"pid (\d+) leads: background jobs run here")


def eventually(condition: Callable[[], bool], timeout: float = 120.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


class Replicas:
    """Three gateways on one store and one Redis, restartable one at a time."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        self.gateways: list[GatewayProcess] = []

    def start(self, count: int = 3) -> None:
        for i in range(count):
            # One after the other: the first runs the migrations, the others find them done.
            self.gateways.append(start_gateway(self.config, data_dir=self.root / f"replica{i}", timeout=180))

    def restart(self, index: int) -> GatewayProcess:
        self.gateways[index] = start_gateway(self.config, data_dir=self.root / f"replica{index}", timeout=180)
        return self.gateways[index]

    def stop(self) -> None:
        for gw in self.gateways:
            gw.stop()

    @property
    def admin(self) -> dict[str, str]:
        return self.gateways[0].headers()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeUpstreamProcess]:
    server = start_fake_upstream(log_dir=tmp_path)
    try:
        yield server
    finally:
        server.stop()


def replica_config(fake: FakeUpstreamProcess, database_url: str, redis_url: str, **extra: Any) -> dict[str, Any]:
    return {
        **TEST_SETTINGS,
        "database_url": database_url,
        # A timeout no busy machine reaches: these checks are about exactness, not outages (the one that
        # kills Redis sees connections refused at once, whatever the timeout).
        "redis": {"url": redis_url, "timeout": 30, **extra.pop("redis", {})},
        "routes": [{"name": "chat", "targets": [openai_target(fake)]}],
        # In-flight caps are per process (64 by default): raised so that every concurrent request below
        # reaches the shared limits these tests are about, and every 429 is theirs.
        "policy": {
            "refresh_interval": 1.0,
            "pricing": {"fake-model": PRICE},
            "concurrency": {"key_in_flight": 1000, "team_in_flight": 1000},
        },
        **extra,
    }


@pytest.fixture
def replicas_of(tmp_path: Path, redis_url: str, fake: FakeUpstreamProcess) -> Iterator[Callable[..., Replicas]]:
    assert POSTGRES is not None
    started: list[Replicas] = []
    with scratch_database(POSTGRES) as database_url:

        def make(**extra: Any) -> Replicas:
            replicas = Replicas(tmp_path, replica_config(fake, database_url, redis_url, **extra))
            started.append(replicas)
            replicas.start()
            return replicas

        try:
            yield make
        finally:
            for replicas in started:
                replicas.stop()


def new_key(replicas: Replicas, **limits: Any) -> dict[str, Any]:
    """A team and a key in it, made on replica 0 and usable on every replica."""
    first = replicas.gateways[0]
    team = httpx.post(f"{first.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=replicas.admin)
    assert team.status_code in (200, 201), team.text
    body = {"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"], **limits}
    made = httpx.post(f"{first.url}/api/keys", json=body, headers=replicas.admin)
    assert made.status_code in (200, 201), made.text
    key = dict(made.json())
    for gw in replicas.gateways:
        known = eventually(lambda gw=gw: httpx.get(f"{gw.base_url}/models", headers=gw.headers(key["key"])).is_success)
        assert known, f"replica on port {gw.port} never learnt the new key"
    return key


async def round_robin(
    replicas: Replicas, key: str, count: int, *, max_tokens: int = 8, timeout: float = 60.0
) -> list[httpx.Response]:
    """``count`` chat completions sent at once, spread evenly over the replicas."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        targets = cycle(replicas.gateways)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
        return await asyncio.gather(
            *(
                http.post(f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(key))
                for gw in (next(targets) for _ in range(count))
            )
        )


def test_a_key_of_60_rpm_is_admitted_60_times_across_three_replicas(
    replicas_of: Callable[..., Replicas],
) -> None:
    replicas = replicas_of()
    key = new_key(replicas, rpm=60)
    began = time.monotonic()
    responses = asyncio.run(round_robin(replicas, key["key"], 300))
    took = time.monotonic() - began
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses.count(200)
    # The bucket holds 60 and refills one a second: over the test's own duration it can admit no more than
    # this however slow the machine is. Counted per replica, three replicas would have admitted 180.
    assert 60 <= admitted <= 60 + math.ceil(took), (admitted, took)
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"rate_limit_exceeded"}


def test_a_budget_of_one_cent_is_not_overspent_by_200_requests_across_three_replicas(
    replicas_of: Callable[..., Replicas],
) -> None:
    replicas = replicas_of()
    key = new_key(replicas)
    first = replicas.gateways[0]
    put = httpx.put(
        f"{first.url}/api/budgets",
        json={"scope": "key", "subject_id": key["id"], "period": "month", "limit_usd": 0.01},
        headers=replicas.admin,
    )
    assert put.status_code == 200, put.text
    budget_id = put.json()["id"]
    for gw in replicas.gateways:
        seen = eventually(lambda gw=gw: httpx.get(f"{gw.url}/api/budgets/{budget_id}", headers=gw.headers()).is_success)
        assert seen, f"replica on port {gw.port} never loaded the budget"
    responses = asyncio.run(round_robin(replicas, key["key"], 200, max_tokens=16))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert 0 < statuses.count(200) < 200
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"insufficient_quota"}
    # What the admitted requests cost, from their stored traces (any replica reads the shared store).
    costs: list[int] = []
    for response in responses:
        if response.status_code == 200:
            request_id = response.headers["x-request-id"]
            found = eventually(lambda rid=request_id: _trace_cost(first, rid) is not None, timeout=120)
            assert found, f"no trace for {request_id}"
            cost = _trace_cost(first, request_id)
            assert cost is not None
            costs.append(cost)
    assert sum(costs) <= 10_000 + max(costs), (sum(costs), max(costs))


def _trace_cost(gw: GatewayProcess, request_id: str) -> int | None:
    listing = httpx.get(f"{gw.url}/api/traces", params={"request_id": request_id}, headers=gw.headers(), timeout=60)
    if listing.status_code != 200 or not listing.json()["data"]:
        return None
    return int(listing.json()["data"][0]["cost_micros"])


def test_a_breaker_opened_on_one_replica_is_open_on_the_others(
    replicas_of: Callable[..., Replicas], fake: FakeUpstreamProcess
) -> None:
    replicas = replicas_of(breaker={"failure_threshold": 2, "reset_timeout": 600})
    key = new_key(replicas)
    first, _, third = replicas.gateways
    fake.configure(fault_rate=1.0, faults=[500])
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        failed = httpx.post(f"{first.base_url}/chat/completions", json=body, headers=first.headers(key["key"]))
        assert failed.status_code >= 500
    calls = fake.count()
    # The breaker is open in Redis: replica 3 skips the target on its next request, without calling it.
    skipped = httpx.post(f"{third.base_url}/chat/completions", json=body, headers=third.headers(key["key"]))
    assert skipped.status_code == 503, skipped.text
    assert fake.count() == calls, "replica 3 called a target whose breaker replica 1 had opened"


def _leader(replicas: Replicas) -> int | None:
    leaders = [i for i, gw in enumerate(replicas.gateways) if gw.alive() and _leads(gw)]
    return leaders[-1] if leaders else None


def _leads(gw: GatewayProcess) -> bool:
    """Whether ``gw``'s log says it took the lease (and has not lost it since)."""
    text = gw.log_path.read_text(errors="replace")
    took = text.rfind("leads: background jobs run here")
    return took >= 0 and text.rfind("lost the leader lease") < took


def test_a_replica_killed_under_load_loses_no_acknowledged_trace_and_its_jobs_move(
    replicas_of: Callable[..., Replicas],
) -> None:
    replicas = replicas_of()
    key = new_key(replicas)
    assert eventually(lambda: _leader(replicas) is not None), "no replica took the leader lease"
    leader = _leader(replicas)
    assert leader is not None
    victim = replicas.gateways[leader]
    acknowledged: list[str] = []

    async def load(stop_after: int) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            sent = 0
            while sent < stop_after and victim.alive():
                request_id = f"kill-{uuid.uuid4().hex}"
                try:
                    answer = await http.post(
                        f"{victim.base_url}/chat/completions",
                        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                        headers={**victim.headers(key["key"]), "x-request-id": request_id},
                    )
                except httpx.HTTPError:
                    return  # the replica died under this request: it was never acknowledged
                if answer.status_code == 200:
                    acknowledged.append(request_id)
                sent += 1

    async def kill_when_loaded() -> None:
        while len(acknowledged) < 50:
            await asyncio.sleep(0.01)
        victim.proc.send_signal(signal.SIGKILL)

    async def both() -> None:
        await asyncio.gather(*(load(10_000) for _ in range(4)), kill_when_loaded())

    asyncio.run(both())
    victim.proc.wait(timeout=30)
    assert len(acknowledged) >= 50
    # Another replica takes the lease the dead one held (PostgreSQL frees its advisory lock with the session).
    others = [gw for i, gw in enumerate(replicas.gateways) if i != leader]
    assert eventually(lambda: any(_leads(gw) for gw in others), timeout=120), "no replica took over the jobs"
    # The killed replica starts again on its data directory and replays its spool: every acknowledged
    # request is in the shared store exactly once.
    replicas.restart(leader)
    reader = others[0]
    for request_id in acknowledged:
        traces = _traces(reader, request_id)
        if len(traces) != 1:
            assert eventually(lambda rid=request_id: len(_traces(reader, rid)) == 1, timeout=120), request_id


def _traces(gw: GatewayProcess, request_id: str) -> list[dict[str, Any]]:
    listing = httpx.get(
        f"{gw.url}/api/traces", params={"client_request_id": request_id}, headers=gw.headers(), timeout=60
    )
    return list(listing.json()["data"]) if listing.status_code == 200 else []


def test_redis_killed_mid_load_follows_the_declared_policy_and_recovers(
    replicas_of: Callable[..., Replicas], redis_server: RedisServer
) -> None:
    # Rate limits fail open (each process's own buckets), budgets fail closed (a 503 rather than overspend).
    replicas = replicas_of(redis={"retry_interval": 1.0})
    free = new_key(replicas, rpm=100_000)
    budgeted = new_key(replicas)
    first = replicas.gateways[0]
    put = httpx.put(
        f"{first.url}/api/budgets",
        json={"scope": "key", "subject_id": budgeted["id"], "period": "month", "limit_usd": 100.0},
        headers=replicas.admin,
    )
    assert put.status_code == 200, put.text
    budget_id = put.json()["id"]
    for gw in replicas.gateways:
        assert eventually(lambda gw=gw: httpx.get(f"{gw.url}/api/budgets/{budget_id}", headers=gw.headers()).is_success)
    assert {r.status_code for r in asyncio.run(round_robin(replicas, budgeted["key"], 30))} == {200}

    redis_server.kill()
    # No request hangs: each is answered well inside the client's timeout, as the policy says.
    free_answers = asyncio.run(round_robin(replicas, free["key"], 60, timeout=30))
    assert {r.status_code for r in free_answers} == {200}
    closed = asyncio.run(round_robin(replicas, budgeted["key"], 30, timeout=30))
    assert {r.status_code for r in closed} == {503}
    error = closed[0].json()["error"]
    assert error["code"] == "shared_state_unavailable" and "redis.on_unavailable.budgets" in error["message"]
    for gw in replicas.gateways:
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert "lmdeck_redis_up 0.0" in metrics

    redis_server.start()
    # Back: budgeted requests are admitted again on every replica once its retry interval has passed.
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    for gw in replicas.gateways:
        assert eventually(
            lambda gw=gw: (
                httpx.post(
                    f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(budgeted["key"]), timeout=30
                ).status_code
                == 200
            ),
            timeout=60,
        ), f"replica on port {gw.port} did not recover"
        assert "lmdeck_redis_up 1.0" in httpx.get(f"{gw.url}/metrics").text
