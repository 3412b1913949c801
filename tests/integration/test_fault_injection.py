"""Fault injection: 2,000 requests through a real ``lmdeck serve`` while one of its two upstreams
fails 30% of its requests, half of them streamed through the official ``openai`` SDK.

Both upstreams are FAKE (``lmdeck.testing.fake_upstream``): each answer echoes the request's
last user message, so every answer can be checked word for word. The failing one misbehaves at
random (seeded) with a mix of 5xx answers, connection resets, hangs (before the response and
before the first token), streams dropped after a few tokens and streams that send an error
event after a few tokens. Retries and fallbacks before a stream's commit point, and resumption
after it (both upstreams continue answers with ``continue_final_message``), must keep the
clients' success rate at 99.9% or more, and no stream may end normally with the wrong text.

The verdict depends on what each request observed, not on time: hangs end at the targets'
deadlines, which are generous next to a healthy answer; a slow machine only makes the run longer.
The breaker's threshold is set out of reach so that the failing upstream stays in rotation for
the whole run: what is measured is retries, fallbacks and resumption, not the breaker taking the
upstream out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, fake_upstream_process, openai_target

pytestmark = pytest.mark.slow

REQUESTS = 2000
CONCURRENCY = 16
FAULT_RATE = 0.3
FAULTS = [
    "500",
    "502",
    "503",
    "reset",
    "hang",
    "hang_before_first_token",
    "drop_mid_stream:1",
    "drop_mid_stream:4",
    "drop_mid_stream:9",
    "error_mid_stream:2",
    "error_mid_stream:7",
]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def prompt(i: int) -> str:
    """The i-th request's message, which the fake upstream echoes back: 14 words, different for each request."""
    return f"request {i} " + " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12))


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstreamProcess, FakeUpstreamProcess]]:
    logs = tmp_path_factory.mktemp("fault-injection")
    with (
        fake_upstream_process(log_dir=logs) as healthy,
        fake_upstream_process(log_dir=logs, fault_rate=FAULT_RATE, faults=FAULTS, seed=2024) as failing,
    ):
        yield healthy, failing


async def one_request(client: AsyncOpenAI, i: int, tally: Tally) -> None:
    expected = prompt(i)
    messages = [{"role": "user", "content": expected}]
    streamed = i % 2 == 1
    try:
        if streamed:
            chunks = [
                c async for c in await client.chat.completions.create(model="chat", messages=messages, stream=True)
            ]  # type: ignore[arg-type]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            roles = sum(1 for c in chunks if c.choices and c.choices[0].delta.role)
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            clean = roles == 1 and finishes == ["stop"] and len({c.id for c in chunks}) == 1
        else:
            reply = await client.chat.completions.create(model="chat", messages=messages)  # type: ignore[arg-type]
            text, clean = reply.choices[0].message.content or "", True
    except openai.APIError as exc:
        tally.outcomes["stream failed" if streamed else "call failed"] += 1
        tally.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
        return
    if text != expected or not clean:
        # A stream that ended normally ([DONE]) with the wrong text, or not as one clean stream.
        tally.outcomes["wrong"] += 1
        tally.wrong.append(f"#{i}: expected {expected!r}, got {text!r} (clean={clean})")
        return
    tally.outcomes["stream ok" if streamed else "call ok"] += 1


async def run_load(base_url: str, key: str) -> Tally:
    tally = Tally()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=60)
    client = AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, http_client=http)

    async def worker() -> None:
        while not queue.empty():
            await one_request(client, queue.get_nowait(), tally)

    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await client.close()
    return tally


def test_clients_barely_notice_an_upstream_failing_30_percent_of_the_time(
    gateway: GatewayFactory,
    upstreams: tuple[FakeUpstreamProcess, FakeUpstreamProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    healthy, failing = upstreams
    deadlines = {"ttft_timeout": 2.0, "timeout": 5.0, "max_retries": 2, "options": {"continue_final_message": True}}
    routes = [
        {
            "name": "chat",
            "targets": [
                openai_target(failing, "m-failing", **deadlines),
                openai_target(healthy, "m-healthy", **deadlines),
            ],
        }
    ]
    gw = gateway(routes, fresh=True, breaker={"failure_threshold": 100_000})

    tally = asyncio.run(run_load(gw.base_url, gw.admin_key))

    total = sum(tally.outcomes.values())
    succeeded = tally.outcomes["stream ok"] + tally.outcomes["call ok"]
    rate = succeeded / total
    faults = {k: v for k, v in failing.stats()["outcomes"].items() if k != "answer"}
    resumed = httpx.get(
        f"{gw.url}/api/traces",
        params={"route": "chat", "q": "stream_resumed", "limit": 500},
        headers=gw.headers(),
        timeout=30,
    ).json()["data"]
    with capsys.disabled():
        print(
            f"\nfault injection: {succeeded}/{total} client requests succeeded ({rate:.4%}); "
            f"outcomes {dict(tally.outcomes)}; faults injected {sum(faults.values())} {faults}; "
            f"streams resumed (traces so far) {len(resumed)}"
        )
        for error, count in tally.errors.most_common(5):
            print(f"  {count} x {error}")
    assert total == REQUESTS
    assert tally.wrong == [], "streams ended normally with the wrong text"
    assert rate >= 0.999, f"client success {rate:.4%} is below 99.9%: {dict(tally.errors)}"
    # The run exercised what it claims to: every kind of fault, and resumption after the commit point.
    assert {"error:500", "error:502", "error:503", "reset", "hang", "hang_before_first_token"} <= set(faults)
    assert {"drop_mid_stream", "error_mid_stream"} <= set(faults)
    assert resumed, "no stream was resumed: the mid-stream faults never struck after a commit point"
