"""``/v1/files`` through a real ``lmdeck serve``, with the official ``openai`` SDK.

One gateway for the module, with a small file limit (``batches.max_file_bytes``) so that an
oversized upload is cheap to send. ``test_moderations_gateway`` starts it with the same
configuration (guardrails included), so the session's factory serves both from one process.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

MAX_FILE_BYTES = 8192


GUARDRAILS = {
    "definitions": {
        "pii": {"type": "pii", "options": {"entities": ["EMAIL_ADDRESS", "CREDIT_CARD"]}},
        "no-forbidden": {"type": "regex", "options": {"words": ["forbidden"]}},
    }
}


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [
        {"name": "chat", "targets": [openai_target(fake_upstream_server)]},
        {
            "name": "guarded",
            "targets": [openai_target(fake_upstream_server)],
            "guardrails": {"input": [{"use": "pii", "action": "block"}]},
        },
    ]
    return gateway(routes, batches={"max_file_bytes": MAX_FILE_BYTES}, guardrails=GUARDRAILS)


def team_key(gw: GatewayProcess) -> str:
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60)
    assert team.status_code in (200, 201), team.text
    key = httpx.post(
        f"{gw.url}/api/keys",
        json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"]},
        headers=admin,
        timeout=60,
    )
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def teamless_key(gw: GatewayProcess) -> str:
    key = httpx.post(f"{gw.url}/api/keys", json={"name": f"k-{uuid.uuid4().hex[:8]}"}, headers=gw.headers(), timeout=60)
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
            "body": {"model": "chat", "messages": [{"role": "user", "content": f"hi {i}"}]},
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def test_upload_list_retrieve_content_and_delete(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    data = rows(3)
    created = client.files.create(file=("rows.jsonl", data), purpose="batch")
    assert created.object == "file" and created.purpose == "batch" and created.bytes == len(data)
    assert created.filename == "rows.jsonl"
    assert [f.id for f in client.files.list()] == [created.id]
    second = client.files.create(file=("more.jsonl", rows(1)), purpose="batch")
    page = client.files.list(limit=1)
    assert [f.id for f in page.data] == [second.id] and page.has_more
    assert [f.id for f in client.files.list(limit=1, after=second.id).data] == [created.id]
    client.files.delete(second.id)
    assert client.files.retrieve(created.id).bytes == len(data)
    assert client.files.content(created.id).content == data
    stored = gw.data_dir / "files" / created.id
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600  # owner-only, as the rest of the data dir
    assert client.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert not stored.exists()


@pytest.mark.parametrize("make_key", [team_key, teamless_key], ids=["another team", "another key without a team"])
def test_another_owner_cannot_see_or_read_or_delete_a_file(gw: GatewayProcess, make_key: Any) -> None:
    owner, other = client_for(gw, make_key(gw)), client_for(gw, make_key(gw))
    created = owner.files.create(file=("rows.jsonl", rows(1)), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(created.id)
    assert created.id not in [f.id for f in other.files.list()]
    assert owner.files.retrieve(created.id).id == created.id


@pytest.mark.parametrize(
    ("second_line", "fragment"),
    [
        (b"{not json", "line 2: not valid JSON"),
        (b'{"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "chat"}}', "repeats"),
        (b'{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {"model": "chat"}}', "method"),
        (b'{"custom_id": "x", "method": "POST", "url": "/v1/images", "body": {"model": "chat"}}', "url"),
        (b'{"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {}}', "body.model"),
    ],
)
def test_a_malformed_batch_file_is_refused_with_its_line_number(
    gw: GatewayProcess, second_line: bytes, fragment: str
) -> None:
    client = client_for(gw, team_key(gw))
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("rows.jsonl", rows(1) + second_line + b"\n"), purpose="batch")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "invalid_batch_line" and error["param"] == "file"
    assert error["message"].startswith("line 2: ") and fragment in error["message"], error


def test_an_unsupported_purpose_and_an_oversized_file_are_refused_by_name(gw: GatewayProcess) -> None:
    client = client_for(gw, team_key(gw))
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("doc.txt", b"hello"), purpose="assistants")
    assert caught.value.body["param"] == "purpose" and "assistants" in caught.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as too_big:
        client.files.create(file=("rows.jsonl", rows(200)), purpose="batch")
    assert too_big.value.status_code == 413
    assert "batches.max_file_bytes" in too_big.value.body["message"]  # type: ignore[index]
