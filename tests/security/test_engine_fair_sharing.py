"""Replays the attack on a shared local model through a real ``lmdeck serve``: one key opens many streams and
leaves them unread, a second key of its team piles on, then another team's key must still be served, and the
model's circuit breaker must stay closed.

Before: the streams filled the model's queue, every request beyond it was a 503 counted as a failure of the
model, five of those opened its breaker, and the other team got ``503 circuit_open`` for the breaker's
reset time. Now the key's cap on open streams refuses the excess (429 ``key_streams_exceeded``), a full
queue is the caller's 429 (``queue_full``) that the breaker never counts, and the other team's request
takes a row back from the team that holds more than its share.

The model is a tiny one with random weights that never ends an answer by itself, so every admitted
stream keeps its row for the whole test (8,000 tokens to go) whatever the machine's speed; each verdict
is about what a request was answered, counted, never about how long anything took.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from lmdeck.local.random_model import write_random_model
from lmdeck.testing.servers import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ROWS, QUEUE, KEY_STREAMS, ATTACK = 4, 4, 6, 24
LONG = {"model": "shared", "messages": [{"role": "user", "content": "go"}], "max_tokens": 8000, "stream": True}


class Attacker:
    """Streams opened by one key and never read: each records its status (and error code) once answered."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.key = key
        self.answers: list[tuple[int, str | None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.hold = asyncio.Event()

    async def _open(self) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        async with self.http.stream("POST", "/v1/chat/completions", json=LONG, headers=headers) as response:
            code = None
            if response.status_code != 200:
                code = (await response.aread()) and response.json()["error"]["code"]
            self.answers.append((response.status_code, code))
            if response.status_code == 200:
                await self.hold.wait()  # open and unread until the test ends

    def open(self, count: int) -> None:
        self.tasks += [asyncio.create_task(self._open()) for _ in range(count)]

    async def answered(self, count: int) -> None:
        while len(self.answers) < count:
            failed = [t for t in self.tasks if t.done() and t.exception() is not None]
            assert not failed, failed[0].exception()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.hold.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def admin(gw: GatewayProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gw.url, headers=gw.headers(), timeout=30) as http:
        response = await http.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()
        return created


async def test_one_keys_unread_streams_never_deny_another_team(tmp_path: Path) -> None:
    write_random_model(tmp_path / "models" / "tiny", context=8192)
    config = {
        "default_routes": False,
        "routes": [{"name": "shared", "targets": [{"provider": "local", "model": "tiny", "timeout": 120}]}],
        "local": {"model_dir": str(tmp_path / "models"), "max_batch_size": ROWS, "max_queue": QUEUE, "threads": 1},
        "breaker": {"failure_threshold": 3},  # three counted failures would open it
        "policy": {"concurrency": {"key_streams": KEY_STREAMS}},
    }
    gw = await asyncio.to_thread(start_gateway, config, data_dir=tmp_path / "gw", env={"LMDECK_LOCAL_DEVICE": "cpu"})
    attackers: list[Attacker] = []
    try:
        red = await admin(gw, "/api/teams", {"name": "red"})
        blue = await admin(gw, "/api/teams", {"name": "blue"})
        keys = {
            name: (await admin(gw, "/api/keys", {"name": name, "role": "inference", "team_id": team["id"]}))["key"]
            for name, team in (("red-1", red), ("red-2", red), ("blue", blue))
        }
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gw.url, timeout=120, limits=limits) as http:
            # 1. One key opens many streams at once and reads none of them.
            first = Attacker(http, keys["red-1"])
            attackers.append(first)
            first.open(ATTACK)
            # Its cap admits KEY_STREAMS (ROWS of them run; the others wait for a row, unanswered yet).
            await first.answered(ATTACK - (KEY_STREAMS - ROWS))
            assert sorted(first.answers) == sorted(
                [(200, None)] * ROWS + [(429, "key_streams_exceeded")] * (ATTACK - KEY_STREAMS)
            )

            # 2. A second key of the same team fills what is left of the queue and runs into it.
            second = Attacker(http, keys["red-2"])
            attackers.append(second)
            second.open(KEY_STREAMS)
            room = QUEUE - (KEY_STREAMS - ROWS)
            await second.answered(KEY_STREAMS - room)
            assert second.answers == [(429, "queue_full")] * (KEY_STREAMS - room)

            # 3. Another team's key is served: it makes room in the full queue and gets a row back.
            blue_client = AsyncOpenAI(base_url=gw.base_url, api_key=keys["blue"], max_retries=0, timeout=120)
            answer = await blue_client.chat.completions.create(
                model="shared", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert answer.usage is not None and answer.usage.completion_tokens == 5
            # The newest waiting red request made room for it: the caller's 429 again, no failure of the model.
            before = (ATTACK - (KEY_STREAMS - ROWS)) + (KEY_STREAMS - room)
            while len(first.answers) + len(second.answers) < before + 1:
                await asyncio.sleep(0.02)
            every = first.answers + second.answers
            assert every.count((429, "queue_full")) == (KEY_STREAMS - room) + 1
            assert all(status in (200, 429) for status, _ in every), every
            assert {code for status, code in every if status == 429} <= {"key_streams_exceeded", "queue_full"}

            # 4. The breaker stayed closed through all of it, and the model still serves everyone.
            metrics = (await http.get("/metrics")).text
            assert 'lmdeck_breaker_state{state="closed",target="local:tiny"} 1.0' in metrics, metrics
            again = await blue_client.chat.completions.create(
                model="shared", messages=[{"role": "user", "content": "again"}], max_tokens=3
            )
            assert again.choices[0].finish_reason == "length"
    finally:
        for attacker in attackers:
            await attacker.close()
        await asyncio.to_thread(gw.stop)
