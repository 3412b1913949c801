"""The FAKE Anthropic API itself: scripted outcomes, control endpoints and the prompt-cache simulation."""

from __future__ import annotations

from typing import Any

import httpx

from lmdeck.testing.fake_anthropic import FakeAnthropic, PromptCache, prompt_blocks

HEADERS = {"anthropic-version": "2023-06-01"}


def body(*system: dict[str, Any], text: str = "hi") -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 8,
        "system": list(system),
        "messages": [{"role": "user", "content": text}],
    }


def block(words: int, ttl: str | None = None) -> dict[str, Any]:
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"type": "text", "text": " ".join(["w"] * words), "cache_control": control}


def test_a_prefix_is_written_once_then_read_and_the_longest_cached_prefix_wins() -> None:
    cache = PromptCache()
    first = cache.usage(prompt_blocks(body(block(10), block(5, "1h"))))
    assert first["cache_creation_input_tokens"] == 15 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 5}
    assert first["input_tokens"] == 1
    again = cache.usage(prompt_blocks(body(block(10), block(5, "1h"), text="other words")))
    assert (again["cache_read_input_tokens"], again["cache_creation_input_tokens"], again["input_tokens"]) == (15, 0, 2)
    # Only the first breakpoint matches: it is read, the new second segment is written.
    partial = cache.usage(prompt_blocks(body(block(10), block(7))))
    assert (partial["cache_read_input_tokens"], partial["cache_creation_input_tokens"]) == (10, 7)
    assert cache.usage(prompt_blocks(body()))["cache_creation_input_tokens"] == 0


async def test_scripted_outcomes_and_control_endpoints() -> None:
    app = FakeAnthropic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake") as http:
        configured = await http.post("/_fake/config", json={"script": ["529:3", "error_event:api_error"]})
        assert configured.json()["script"] == ["529:3", "error_event:api_error"]
        overloaded = await http.post("/v1/messages", json=body(), headers=HEADERS)
        assert overloaded.status_code == 529 and overloaded.headers["retry-after"] == "3"
        assert overloaded.json()["error"]["type"] == "overloaded_error"
        # An error event scripted for a request that does not stream comes as its HTTP status.
        failed = await http.post("/v1/messages", json=body(), headers=HEADERS)
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
        app.script = ["error_event:overloaded_error"]
        streamed = await http.post("/v1/messages", json={**body(), "stream": True}, headers=HEADERS)
        events = [line for line in streamed.text.splitlines() if line.startswith("event:")]
        assert events == ["event: message_start", "event: ping", "event: error"]
        assert len((await http.get("/_fake/requests")).json()) == 3
        await http.post("/_fake/reset")
        assert (await http.get("/_fake/requests")).json() == []
        assert (await http.post("/v1/messages", json=body(), headers={})).status_code == 400
