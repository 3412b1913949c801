"""``lmdeck serve --workers``: one port, several processes, every request traced exactly once.

Which worker served a request is read from where its trace was spooled (``<spool_dir>/worker-K``,
the segment still being written), not from anything the gateway adds to answers.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from openai import OpenAI

from lmdeck.protocol.traces import TraceRecord
from lmdeck.testing.servers import (
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    gateway_process,
    openai_target,
)
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.spool_dirs import worker_spool_dir

SERVING = re.compile(r"worker (\d+) \(pid (\d+)\) is serving")


def eventually(condition: Callable[[], bool], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def config(fake: FakeUpstreamProcess) -> dict[str, object]:
    return {**TEST_SETTINGS, "routes": [{"name": "chat", "targets": [openai_target(fake)]}]}


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstreamProcess
) -> Iterator[GatewayProcess]:
    with gateway_process(config(fake_upstream_server), data_dir=tmp_path_factory.mktemp("workers"), workers=2) as gw:
        yield gw


def send(gw: GatewayProcess, count: int, prefix: str) -> list[str]:
    """``count`` chat completions with the openai SDK, each on a new connection; their request ids."""
    ids = []
    for _ in range(count):
        request_id = f"{prefix}-{uuid.uuid4().hex}"
        with httpx.Client() as http:  # a new connection each time: the kernel picks a worker per connection
            client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, http_client=http, max_retries=0, timeout=60)
            reply = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": request_id}
            )
        assert reply.choices[0].message.content
        ids.append(request_id)
    return ids


def stored(gw: GatewayProcess, request_id: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{gw.url}/api/traces", params={"client_request_id": request_id}, headers=gw.headers(), timeout=60
    )
    response.raise_for_status()
    return list(response.json()["data"])


def spooled(directory: Path) -> set[str]:
    ids = set()
    for segment in directory.glob("*.jsonl"):
        for line in segment.read_bytes().splitlines():
            ids.add(orjson.loads(line).get("client_request_id"))
    return ids


def test_both_workers_serve_and_every_request_is_traced_once(workers: GatewayProcess) -> None:
    sent = send(workers, 24, "spread")
    for request_id in sent:
        workers.trace(request_id)  # waits until stored
        assert len(stored(workers, request_id)) == 1
    by_worker = [spooled(worker_spool_dir(workers.data_dir / "spool", k)) & set(sent) for k in range(2)]
    assert by_worker[0] and by_worker[1], "one worker served every connection"
    assert not by_worker[0] & by_worker[1]
    assert by_worker[0] | by_worker[1] == set(sent)


def test_limits_per_worker_are_logged_once_at_start(workers: GatewayProcess) -> None:
    log = workers.log_path.read_text(errors="replace")
    assert log.count("counted in each of the 2 workers") == 1
    assert f"lmdeck listening on http://127.0.0.1:{workers.port}/v1 (2 workers;" in log
    assert log.count(" leads: background jobs run here") == 1


def test_a_killed_worker_is_replaced_and_serving_goes_on(workers: GatewayProcess) -> None:
    pids = dict(SERVING.findall(workers.log_path.read_text(errors="replace")))
    victim = int(pids["1"])
    os.kill(victim, signal.SIGKILL)
    assert eventually(lambda: dict(SERVING.findall(workers.log_path.read_text(errors="replace")))["1"] != str(victim))
    for request_id in send(workers, 6, "after-kill"):
        workers.trace(request_id)
        assert len(stored(workers, request_id)) == 1
    assert workers.alive()


def test_a_leftover_worker_spool_is_replayed_by_a_one_worker_start(
    tmp_path: Path, fake_upstream_server: FakeUpstreamProcess
) -> None:
    left = TraceRecord(route="chat", client_request_id=f"leftover-{uuid.uuid4().hex}")
    spool = TraceSpool(worker_spool_dir(tmp_path / "spool", 1))
    spool.open()
    spool.submit_nowait(left)
    spool.close()
    with gateway_process(config(fake_upstream_server), data_dir=tmp_path, workers=1) as gw:
        assert gw.trace(str(left.client_request_id))["id"] == left.id


def test_sigterm_stops_every_worker(tmp_path: Path, fake_upstream_server: FakeUpstreamProcess) -> None:
    with gateway_process(config(fake_upstream_server), data_dir=tmp_path, workers=2) as gw:
        assert eventually(lambda: "lmdeck listening on" in gw.log_path.read_text(errors="replace"))  # all ready
        pids = [int(pid) for _, pid in SERVING.findall(gw.log_path.read_text(errors="replace"))]
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(120) == 0
    assert len(pids) == 2
    for pid in pids:
        assert eventually(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _zombie(pid))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
