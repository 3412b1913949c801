"""Two ``lmdeck serve`` replicas on one store: a batch runs in one of them, and outlives it.

Gateways A and B share the store (a SQLite file, or PostgreSQL when ``LMDECK_TEST_POSTGRES_URL`` is
set) and the files folder (B's ``files`` is a link to A's, as replicas that share a volume for it),
each with its own data directory, with a short claim TTL (``batches.claim_ttl_s``).

The fake upstream answers the first ``ANSWERED`` rows and then holds every later row (it answers none
until the caller leaves), so that A, with ``CONCURRENCY`` rows in flight, is stuck mid-batch however
fast the machine is; the fake is told to answer normally again before A is killed, when A can send
nothing more (all its row slots wait on held rows).

What is asserted, and why:

- B, started while A runs the batch, does not resume it: B's start adopts at once (before it serves)
  what no live process claims, so its log has no ``resuming batch`` line for it once B serves.
- After A is killed with SIGKILL, B adopts the batch once A's claim expires, and it completes with
  every row in the output file exactly once.
- Each row reached the upstream exactly once, except the rows A had in flight at the kill (held by
  the fake, with no result recorded): those were sent once more, by B, and exactly twice in all. A
  row whose result is in the done-set or on disk is never run again; a row without one is run again
  by whoever adopts the batch (at least once).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types import Batch

from lmdeck.db.scratch import scratch_database
from lmdeck.testing.servers import (
    TEST_ADMIN_KEY,
    TEST_SETTINGS,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
    start_gateway,
)

pytestmark = pytest.mark.integration

ROWS = 40
ANSWERED = 10
CONCURRENCY = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    with scratch_database(server) as url:
        yield url


def team_key(gw: GatewayProcess) -> str:
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": "replicas"}, headers=admin, timeout=60)
    assert team.status_code in (200, 201), team.text
    key = httpx.post(f"{gw.url}/api/keys", json={"name": "k", "team_id": team.json()["id"]}, headers=admin, timeout=60)
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def client_for(gw: GatewayProcess, key: str) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)


def rows(n: int) -> bytes:
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "chat", "messages": [{"role": "user", "content": f"row r{i}"}], "max_tokens": 8},
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def wait_for(client: OpenAI, batch_id: str, done: Callable[[Batch], bool], timeout: float = 180.0) -> Batch:
    deadline = time.monotonic() + timeout
    while not done(batch := client.batches.retrieve(batch_id)):
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}: {batch.request_counts}"
        time.sleep(0.1)
    return batch


def until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def resumed(gw: GatewayProcess, batch_id: str) -> bool:
    return f"resuming batch {batch_id}" in gw.log()


def test_a_replica_leaves_a_live_ones_batch_alone_and_adopts_it_when_that_one_dies(
    tmp_path: Path, store_url: str
) -> None:
    fake = start_fake_upstream(log_dir=tmp_path, keep_requests=ROWS * 3)
    # Held rows must not time out and be retried by A while the test waits: the upstream timeout is long.
    target = openai_target(fake, timeout=3600)
    config = {
        **TEST_SETTINGS,
        "database_url": store_url,
        "routes": [{"name": "chat", "targets": [target]}],
        # Short next to the 30 s default, so B adopts soon after the kill; long enough that A, renewing every
        # 5 s, never misses a renewal on a loaded machine (a lapse while A lives would hand its batch to B).
        "batches": {"concurrency": CONCURRENCY, "claim_ttl_s": 10.0},
    }
    (tmp_path / "a" / "files").mkdir(mode=0o700, parents=True)
    (tmp_path / "b").mkdir(mode=0o700)
    (tmp_path / "b" / "files").symlink_to(tmp_path / "a" / "files", target_is_directory=True)
    a = start_gateway(config, data_dir=tmp_path / "a", admin_key=TEST_ADMIN_KEY, timeout=180)
    b: GatewayProcess | None = None
    try:
        fake.configure(script=[200] * ANSWERED, mode="hang")
        client = client_for(a, team_key(a))
        uploaded = client.files.create(file=("rows.jsonl", rows(ROWS)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        until(lambda: fake.stats()["in_flight"] == CONCURRENCY, "A has every row slot on a held row")
        wait_for(client, batch.id, lambda x: x.request_counts is not None and x.request_counts.completed == ANSWERED)

        b = start_gateway(config, data_dir=tmp_path / "b", admin_key=TEST_ADMIN_KEY, timeout=180)
        assert not resumed(b, batch.id), "B resumed a batch that A runs"
        assert client_for(b, client.api_key).batches.retrieve(batch.id).status == "in_progress"

        fake.configure(mode="normal")  # A sends nothing more: each of its row slots waits on a held row
        a.proc.kill()
        a.proc.wait(timeout=60)
        seen_before_kill = Counter(content(r) for r in fake.requests() if is_chat(r))
        on_disk = {
            json.loads(line)["custom_id"]
            for line in (tmp_path / "a" / "files" / "batches" / batch.id / "output.jsonl").read_text().splitlines()
        }
        held = set(seen_before_kill) - {f"row {cid}" for cid in on_disk}
        assert len(on_disk) == ANSWERED and len(held) == CONCURRENCY and set(seen_before_kill.values()) == {1}

        until(lambda: b is not None and resumed(b, batch.id), "B adopts the dead replica's batch")
        b_client = client_for(b, client.api_key)
        done = wait_for(b_client, batch.id, lambda x: x.status == "completed", timeout=300)
        assert done.request_counts is not None and done.request_counts.completed == ROWS
        output = b_client.files.content(done.output_file_id or "").text.splitlines()
        assert Counter(json.loads(line)["custom_id"] for line in output) == Counter({f"r{i}": 1 for i in range(ROWS)})
        sent = Counter(content(r) for r in fake.requests() if is_chat(r))
        assert set(sent) == {f"row r{i}" for i in range(ROWS)}
        assert {row for row, n in sent.items() if n == 2} == held and set(sent.values()) <= {1, 2}
    finally:
        if a.proc.poll() is None:
            a.stop()
        if b is not None:
            b.stop()
        fake.stop()


def is_chat(request: dict[str, Any]) -> bool:
    return str(request["path"]).endswith("/chat/completions")


def content(request: dict[str, Any]) -> str:
    return str(request["body"]["messages"][0]["content"])
