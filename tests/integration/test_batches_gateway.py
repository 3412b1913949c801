"""``/v1/batches`` through a real ``lmdeck serve``, with the official ``openai`` SDK.

One gateway for the module's small batches (route ``chat`` in front of the shared fake upstream).
The 1,000-row batch gets its own fake upstream (so that its counts are its own) and its own gateway,
which the test stops mid-way and starts again on the same data directory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Batch

from lmdeck.testing.servers import (
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
    start_gateway,
)


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [{"name": "chat", "targets": [openai_target(fake_upstream_server)]}]
    return gateway(routes, batches={"concurrency": 4})


def team_key(gw: GatewayProcess, **limits: int) -> str:
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin)
    assert team.status_code in (200, 201), team.text
    body = {"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"], **limits}
    key = httpx.post(f"{gw.url}/api/keys", json=body, headers=admin)
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def client_for(gw: GatewayProcess, key: str) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=60)


def rows(n: int, *, url: str = "/v1/chat/completions", model: str = "chat", tag: str = "") -> bytes:
    def body(i: int) -> dict[str, Any]:
        if url == "/v1/embeddings":
            return {"model": model, "input": f"row {tag}{i}"}
        return {"model": model, "messages": [{"role": "user", "content": f"row {tag}{i}"}], "max_tokens": 8}

    lines = [{"custom_id": f"{tag}{i}", "method": "POST", "url": url, "body": body(i)} for i in range(n)]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def wait_for(client: OpenAI, batch_id: str, done: Any, timeout: float = 120.0) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}: {batch.request_counts}"
        time.sleep(0.1)


def lines_of(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]


def test_a_batch_runs_every_row_and_writes_openai_shaped_output(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    uploaded = client.files.create(file=("rows.jsonl", rows(5)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.object == "batch" and batch.status in ("validating", "in_progress")
    assert batch.metadata == {"job": "nightly"}
    done = wait_for(client, batch.id, lambda b: b.status == "completed")
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 5, 0)
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.error_file_id is None
    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["0", "1", "2", "3", "4"]
    for line in output:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"
        trace = httpx.get(
            f"{gw.url}/api/traces",
            params={"request_id": line["response"]["request_id"]},
            headers=gw.headers(),
            timeout=60,  # a trace query may wait for the analytics pool on a busy machine
        )
        # traces land asynchronously: the row's trace is there once it is, with the batch's id
        if trace.json()["data"]:
            assert trace.json()["data"][0]["metadata"]["batch_id"] == batch.id
    assert client.files.retrieve(done.output_file_id or "").purpose == "batch_output"
    assert batch.id in [b.id for b in client.batches.list()]


def test_a_row_for_an_endpoint_its_route_cannot_serve_is_an_error_line_naming_both(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    uploaded = client.files.create(file=("rows.jsonl", rows(2, url="/v1/embeddings")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait_for(client, batch.id, lambda b: b.status == "completed")
    assert done.output_file_id is None
    errors = lines_of(client, done.error_file_id)
    assert len(errors) == 2
    error = errors[0]["response"]["body"]["error"]
    assert errors[0]["response"]["status_code"] == 400 and error["code"] == "unsupported_endpoint"
    assert "'chat'" in error["message"] and "/v1/embeddings" in error["message"]


def test_a_line_for_another_endpoint_fails_the_batch_naming_the_line(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    uploaded = client.files.create(file=("rows.jsonl", rows(2, url="/v1/completions")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = wait_for(client, batch.id, lambda b: b.status == "failed")
    assert failed.errors is not None and failed.errors.data
    first = failed.errors.data[0]
    assert first.line == 1 and first.message is not None and "/v1/completions" in first.message


def test_cancel_mid_way_and_another_team_cannot_see_or_cancel(gw: GatewayProcess) -> None:
    # Two requests a minute: two rows run at once, the third waits for the limiter when we cancel.
    client = client_for(gw, team_key(gw, rpm=2))
    other = client_for(gw, team_key(gw))
    uploaded = client.files.create(file=("rows.jsonl", rows(10)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed == 2)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(uploaded.id)
    assert batch.id not in [b.id for b in other.batches.list()]
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    cancelled = wait_for(client, batch.id, lambda b: b.status == "cancelled")
    assert cancelled.cancelling_at and cancelled.cancelled_at
    assert cancelled.request_counts is not None and cancelled.request_counts.completed == 2
    assert sorted(line["custom_id"] for line in lines_of(client, cancelled.output_file_id)) == ["0", "1"]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_a_batch_of_an_unknown_file_is_refused_by_name(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    with pytest.raises(openai.NotFoundError) as caught:
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    assert caught.value.body["param"] == "input_file_id"  # type: ignore[index]


ROWS = 1000
# The bucket, not the test's timing, decides how much each process does. The first process stops
# after 300 rows; its limiter admits at most RPM (400) at once and 400/60 a second after that, so at
# least 600 minus that refill remain for the second process, which must then wait (600 > 400) however
# slow or fast the machine is. It would take 30 s between the first process exhausting its bucket
# and its stop for the second process to fit in one bucket.
RPM = 400


def traces_of_batch(gw: GatewayProcess, batch_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": batch_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(f"{gw.url}/api/traces", params=params, headers=gw.headers(), timeout=60).json()
        found += [t for t in page["data"] if t["metadata"].get("batch_id") == batch_id]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def within_bucket(times: list[float], rpm: int, slack: int) -> bool:
    """No run of calls exceeds what a token bucket of ``rpm`` a minute (full at the start) admits:
    calls i..j (sorted) are at most ``rpm`` plus the refill over their span, plus ``slack``."""
    times = sorted(times)
    return all(
        j - i + 1 <= rpm + rpm * (times[j] - times[i]) / 60.0 + slack for j in range(len(times)) for i in range(j)
    )


def test_a_thousand_rows_survive_a_restart_are_traced_once_and_keep_the_rate_limit(tmp_path: Path) -> None:
    fake = start_fake_upstream(log_dir=tmp_path, keep_requests=ROWS + 100)
    config = {**TEST_SETTINGS, "routes": [{"name": "chat", "targets": [openai_target(fake)]}]}
    config["batches"] = {"concurrency": 8}
    data_dir = tmp_path / "gw"
    first = start_gateway(config, data_dir=data_dir, timeout=180)
    try:
        key = team_key(first, rpm=RPM)
        client = client_for(first, key)
        uploaded = client.files.create(file=("rows.jsonl", rows(ROWS, tag="c")), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_for(client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 300)
    finally:
        first.stop()  # graceful: rows in flight finish and are kept; the rest wait for the restart
    restarted_at = time.time()
    calls_before = fake.count()
    assert calls_before < ROWS, "the batch finished before the restart: nothing was resumed"
    second = start_gateway(config, data_dir=data_dir, timeout=180)
    try:
        client = client_for(second, key)
        done = wait_for(client, batch.id, lambda b: b.status == "completed", timeout=300)
        assert done.request_counts is not None and done.request_counts.completed == ROWS
        output = lines_of(client, done.output_file_id)
        assert len(output) == ROWS and len({line["custom_id"] for line in output}) == ROWS
        # Each row reached the upstream exactly once, over both processes.
        assert fake.count() == ROWS
        sent = Counter(
            r["body"]["messages"][0]["content"] for r in fake.requests() if r["path"].endswith("/chat/completions")
        )
        assert len(sent) == ROWS and set(sent.values()) == {1}
        # Each row is traced exactly once, with the batch's id.
        deadline = time.monotonic() + 120
        while len(traces := traces_of_batch(second, batch.id)) < ROWS and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(traces) == ROWS
        assert len({t["metadata"]["custom_id"] for t in traces}) == ROWS
        # The key's limit held in each process (the limiter is per process), judged from when each row was
        # admitted: its trace's time, which lmdeck stamps as the limiter lets the row in.
        times = [float(t["created_at"]) for t in traces]
        before = [t for t in times if t < restarted_at]
        after = [t for t in times if t >= restarted_at]
        assert len(before) + len(after) == ROWS and len(after) > RPM, "the second process never waited"
        assert within_bucket(before, RPM, slack=1) and within_bucket(after, RPM, slack=1)
    finally:
        second.stop()
        fake.stop()
