"""SIGKILL the gateway mid-load: after a restart, every answered request is stored exactly once.

A real ``lmdeck serve`` sends chat requests (plain and streamed) to the fake
upstream while concurrent clients keep it busy. Meanwhile the test holds the
SQLite store's write lock, as a slow or busy store would, so answered requests
pile up in the spool only. The process is killed without warning once a good
number of requests have been answered, then started again on the same data
directory. Its spool replay must bring into the store every request whose
client saw a complete response (the whole JSON body, or the stream's
``[DONE]``), and none of any request twice (the requests stored before the
lock are replayed too, and must not be doubled).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess, openai_target, start_gateway

pytestmark = pytest.mark.slow

WORKERS = 24
KILL_AFTER = 150


async def _one_request(http: httpx.AsyncClient, gw: GatewayProcess, request_id: str, stream: bool) -> bool:
    """Send one chat request; True only if its whole response arrived."""
    body: dict[str, Any] = {
        "model": "chat",
        "messages": [{"role": "user", "content": f"hello {request_id}"}],
        "stream": stream,
    }
    headers = {**gw.headers(), "x-request-id": request_id}
    if not stream:
        response = await http.post(f"{gw.base_url}/chat/completions", json=body, headers=headers)
        return response.status_code == 200 and response.json()["choices"][0]["message"]["content"] is not None
    async with http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return False
        async for line in response.aiter_lines():
            if line.strip() == "data: [DONE]":
                return True
    return False


async def _load_then_kill(gw: GatewayProcess) -> tuple[set[str], set[str]]:
    """Run the load, SIGKILL the gateway mid-way; (answered request ids, every request id sent)."""
    answered: set[str] = set()
    sent: set[str] = set()
    counter = itertools.count()
    killed = asyncio.Event()

    async def worker(http: httpx.AsyncClient) -> None:
        while not killed.is_set():
            n = next(counter)
            request_id = f"crash-{n:05d}"
            sent.add(request_id)
            try:
                if await _one_request(http, gw, request_id, stream=n % 2 == 1):
                    answered.add(request_id)
            except (httpx.HTTPError, ValueError, KeyError):
                # Cut off by the kill: the client never got a whole response.
                continue
            if len(answered) >= KILL_AFTER and not killed.is_set():
                gw.proc.kill()
                killed.set()

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        await asyncio.wait_for(asyncio.gather(*(worker(http) for _ in range(WORKERS))), 120)
    gw.proc.wait(10)
    return answered, sent


def _stored_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute("SELECT client_request_id, COUNT(*) FROM traces GROUP BY client_request_id").fetchall()
    return {request_id: count for request_id, count in rows}


def _listed_ids(gw: GatewayProcess) -> list[str]:
    """Every stored trace's client request id, through ``GET /api/traces`` page by page."""
    ids: list[str] = []
    params: dict[str, Any] = {"route": "chat", "limit": 200}
    while True:
        body = httpx.get(f"{gw.url}/api/traces", params=params, headers=gw.headers(), timeout=10).json()
        ids.extend(t["client_request_id"] for t in body["data"])
        if not body["has_more"]:
            return ids
        params["cursor"] = body["next_cursor"]


def _wait_stored(db_path: Path, request_ids: set[str], timeout: float = 120.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = _stored_counts(db_path)
        if request_ids <= counts.keys() or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def test_sigkill_mid_load_loses_and_duplicates_nothing(fake_upstream: FakeUpstreamProcess, tmp_path: Path) -> None:
    fake_upstream.configure(latency_ms=5, tokens_per_s=400)
    config = {"default_routes": False, "routes": [{"name": "chat", "targets": [openai_target(fake_upstream)]}]}
    data_dir = tmp_path / "gw"
    db_path = data_dir / "lmdeck.db"
    gw = start_gateway(config, data_dir=data_dir)
    try:
        warm = {f"warm-{n}" for n in range(10)}
        for request_id in sorted(warm):
            answer = httpx.post(
                f"{gw.base_url}/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "warm"}]},
                headers={**gw.headers(), "x-request-id": request_id},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        assert warm <= _wait_stored(db_path, warm).keys()

        lock = sqlite3.connect(db_path, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            answered, sent = asyncio.run(_load_then_kill(gw))
            stored_at_kill = {row[0] for row in lock.execute("SELECT client_request_id FROM traces")}
        finally:
            lock.close()
    finally:
        if gw.alive():
            gw.proc.kill()
    answered |= warm
    sent |= warm
    assert len(answered) >= KILL_AFTER
    assert len(sent) > len(answered), "the kill did not interrupt any request"
    assert answered - stored_at_kill, "every answer was stored before the kill: the replay went untested"

    restarted = start_gateway(config, data_dir=data_dir)
    try:
        counts = _wait_stored(db_path, answered)
        missing = answered - counts.keys()
        assert not missing, f"{len(missing)} answered requests are not stored, e.g. {sorted(missing)[:5]}"
        duplicated = {rid: n for rid, n in counts.items() if n != 1}
        assert not duplicated, f"stored more than once: {duplicated}"
        assert set(counts) <= sent

        listed = _listed_ids(restarted)
        assert len(listed) == len(set(listed)) == len(counts)
        assert answered <= set(listed)
    finally:
        restarted.stop()
