"""Streams through a real ``lmdeck serve`` whose fake upstream fails part-way: the commit point,
resumption on a target that can continue the answer, and the honest end when none can."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import (
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    fake_upstream_process,
    openai_target,
)

ANSWER = "alpha bravo charlie delta echo foxtrot golf hotel"
USER = [{"role": "user", "content": ANSWER}]
CONTINUES = {"continue_final_message": True}
#: The fake's pace when a test counts the tokens read before a cut: each must be read before the next comes.
PACED_TOKENS_PER_S = 5


@pytest.fixture(scope="module")
def own_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    """A fake upstream only this module's gateways call.

    The tests script the very next upstream request and then read the last one seen, so a late
    request from another module's gateway (a retry still under way) must not reach it.
    """
    with fake_upstream_process(log_dir=tmp_path_factory.mktemp("stream-fake")) as fake:
        yield fake


@pytest.fixture
def fake_upstream(own_fake: FakeUpstreamProcess) -> FakeUpstreamProcess:
    own_fake.reset()
    return own_fake


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    commit = {"chunks": 2, "max_hold_ms": 5000}
    routes = [
        {
            "name": "resumable",
            "stream_commit": commit,
            "targets": [
                openai_target(fake_upstream, "m-first", weight=1, options=CONTINUES),
                openai_target(fake_upstream, "m-second", weight=0, options=CONTINUES),
            ],
        },
        {
            "name": "plain",
            "stream_commit": commit,
            "targets": [
                openai_target(fake_upstream, "m-plain-a", weight=1),
                openai_target(fake_upstream, "m-plain-b", weight=0),
            ],
        },
    ]
    return gateway(routes)


def stream(gw: GatewayProcess, model: str) -> tuple[list[Any], str, BaseException | None]:
    """The chunks of one streamed request, its request id, and the error that ended it (if one did)."""
    request_id = f"stream-{uuid.uuid4().hex}"
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=30)
    chunks: list[Any] = []
    try:
        for chunk in client.chat.completions.create(
            model=model,
            messages=USER,
            stream=True,
            extra_headers={"x-request-id": request_id},  # type: ignore[arg-type]
        ):
            chunks.append(chunk)
    except openai.APIError as exc:
        return chunks, request_id, exc
    return chunks, request_id, None


def text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize(
    "fault", ["drop_mid_stream:1", "error_mid_stream:1", "500", "reset", "hang_before_first_token"]
)
def test_a_failure_before_the_commit_point_is_invisible(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess, fault: str
) -> None:
    gw = gateway(
        [
            {
                "name": "guarded",
                "stream_commit": {"chunks": 2, "max_hold_ms": 5000},
                # Generous: the retry's first token must come within it on a loaded machine too.
                "targets": [openai_target(fake_upstream, "m-guarded", ttft_timeout=5.0)],
            }
        ]
    )
    fake_upstream.configure(script=[fault])
    chunks, request_id, error = stream(gw, "guarded")
    assert error is None and text(chunks) == ANSWER
    assert {c.id for c in chunks} == {chunks[0].id} and sum(
        1 for c in chunks if c.choices and c.choices[0].delta.role
    ) == 1
    trace = gw.trace(request_id)
    assert trace["status_code"] == 200 and trace["retries"] == 1 and "stream_resumed" not in trace["metadata"]


@pytest.mark.parametrize("fault", ["drop_mid_stream:4", "error_mid_stream:4"])
def test_a_stream_cut_after_its_commit_point_is_resumed_seamlessly(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, fault: str
) -> None:
    # Paced, so each token is read before the cut: a connection closed with data still unread
    # may lose that data in the client library, and the gateway would then resume earlier. A beat
    # of 200 ms (not 50) leaves the gateway time to read each token on a loaded machine too.
    fake_upstream.configure(script=[fault], tokens_per_s=PACED_TOKENS_PER_S)
    chunks, request_id, error = stream(gw, "resumable")
    assert error is None and text(chunks) == ANSWER
    assert {c.id for c in chunks} == {chunks[0].id}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    seen = [r["body"] for r in fake_upstream.requests()]
    assert [b["model"] for b in seen] == ["m-first", "m-second"]
    continuation = seen[-1]
    assert continuation.get("continue_final_message") is True
    assert continuation["messages"][-1] == {"role": "assistant", "content": "alpha bravo charlie delta "}
    trace = gw.trace(request_id)
    assert trace["status_code"] == 200 and trace["target"] == f"openai:m-second@{fake_upstream.base_url}"
    assert trace["metadata"]["stream_resumed"] == [
        {
            "from": f"openai:m-first@{fake_upstream.base_url}",
            "to": f"openai:m-second@{fake_upstream.base_url}",
            "offset": 4,
            "offset_chars": len("alpha bravo charlie delta "),
            "continued": True,
        }
    ]
    assert trace["response_body"] == {"content": ANSWER}


def test_a_cut_stream_that_cannot_be_resumed_ends_with_an_error_and_estimated_tokens(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.configure(script=["drop_mid_stream:4"], tokens_per_s=PACED_TOKENS_PER_S)
    chunks, request_id, error = stream(gw, "plain")
    assert isinstance(error, openai.APIError) and text(chunks) == "alpha bravo charlie delta "
    assert fake_upstream.count() == 1
    trace = gw.trace(request_id)
    assert trace["status_code"] == 502 and "stream_resumed" not in trace["metadata"]
    # Tokens estimated from the prompt and the four pieces sent, as the cost is.
    assert trace["input_tokens"] > 0 and trace["output_tokens"] == 4 and trace["metadata"]["usage_estimated"]
