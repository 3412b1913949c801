"""Prompt compression through a real ``lmdeck serve``: the FAKE upstream is sent fewer messages and the
trace counts the tokens saved; a route that does not opt in is sent the conversation as it was."""

from __future__ import annotations

import uuid
from typing import Any

from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, openai_target


def test_the_upstream_gets_the_compressed_conversation(
    gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess
) -> None:
    routes = [
        {
            "name": "squeezed",
            "targets": [openai_target(fake_upstream, "m-squeezed")],
            "compression": {"max_prompt_tokens": 60, "keep_last_turns": 2},
        },
        {"name": "plain", "targets": [openai_target(fake_upstream, "m-plain")]},
    ]
    gw = gateway(routes)
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)
    history: list[Any] = [{"role": "system", "content": "You   answer briefly.\n\n\n\n"}]
    for i in range(6):
        history.append({"role": "user", "content": f"Tell me about topic {i}: " + "details " * 12})
        history.append({"role": "assistant", "content": f"Topic {i} is " + "interesting " * 12})
    history.append({"role": "user", "content": "Tell me about topic 0: " + "details " * 12})
    history.append({"role": "user", "content": "And the last one?"})
    request_id = f"compress-{uuid.uuid4().hex}"
    client.chat.completions.create(model="squeezed", messages=history, extra_headers={"x-request-id": request_id})
    client.chat.completions.create(model="plain", messages=history)
    by_model = {r["body"]["model"]: r["body"]["messages"] for r in fake_upstream.requests()}
    squeezed, plain = by_model["m-squeezed"], by_model["m-plain"]
    assert plain == history
    assert squeezed[0] == {"role": "system", "content": "You answer briefly."}
    assert squeezed[-2:] == [{**m, "content": m["content"].strip()} for m in history[-2:]]
    assert len(squeezed) < len(history)
    entry = gw.trace(request_id)["metadata"]["compression"]
    assert entry["tokens_saved"] == entry["tokens_before"] - entry["tokens_after"] > 0
    assert entry["turns_dropped"] > 0 and entry["duplicates_dropped"] == 1
