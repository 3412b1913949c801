"""The check of a batch input file at upload, and the route setting ``batch: native`` refused by name."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from lmdeck.gateway.batches.files import check_batch_file
from lmdeck.protocol import APIError
from lmdeck.settings import RouteConfig


def line(custom_id: str, url: str = "/v1/chat/completions", **body: object) -> bytes:
    payload = {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": "chat", **body}}
    return json.dumps(payload).encode()


def test_rows_come_back_in_order_and_blank_lines_are_skipped() -> None:
    rows = check_batch_file(line("a") + b"\n\n" + line("b", "/v1/embeddings") + b"\n", max_rows=10)
    assert [(r.custom_id, r.url) for r in rows] == [("a", "/v1/chat/completions"), ("b", "/v1/embeddings")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (line("a") + b"\n" + line("a"), "line 2: custom_id 'a' repeats line 1"),
        (line("a") + b"\n[1, 2]", "line 2: "),
        (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}', "line 1: body.model"),
        (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}', "line 1: body"),
        (line("a") + b"\n" + line("b") + b"\n" + line("c"), "line 3: the file holds more than 2 requests"),
        (b"\n \n", "holds no request lines"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line(data: bytes, message: str) -> None:
    with pytest.raises(APIError) as caught:
        check_batch_file(data, max_rows=2)
    assert caught.value.status == 400 and message in caught.value.message


def test_native_batches_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="batch: native"):
        RouteConfig.model_validate({"name": "r", "targets": ["openai:gpt-4o"], "batch": "native"})
