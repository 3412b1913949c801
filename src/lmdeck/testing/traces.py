"""Synthetic trace records for tests and benchmarks: varied routes, teams, keys, statuses and bodies.

    records = synthetic_traces(10_000, start=time.time() - 30 * 86400, span_s=30 * 86400, seed=7)

Deterministic for a seed. Six routes (each with its target and upstream model), four teams with
five keys each, about 3 % errors (429, 500, 502), latencies log-normal around 80-900 ms
depending on the route, some streamed with a time to first token, a few prompt versions and
experiment variants, and short request/response bodies with searchable words.
"""

from __future__ import annotations

import random

from lmdeck.protocol.traces import TraceRecord, new_trace_id

ROUTES: tuple[tuple[str, str, str, float], ...] = (
    # route, target, upstream model, median latency (ms)
    ("demo", "local/demo", "demo", 80.0),
    ("chat", "openai/gpt-4o-mini", "gpt-4o-mini", 450.0),
    ("reasoning", "openai/o4-mini", "o4-mini", 900.0),
    ("support", "anthropic/claude-haiku", "claude-haiku", 600.0),
    ("summarize", "openai/gpt-4o", "gpt-4o", 700.0),
    ("embed", "openai/text-embedding-3-small", "text-embedding-3-small", 120.0),
)
TEAMS: tuple[str, ...] = ("team-a", "team-b", "team-c", "team-d")
WORDS: tuple[str, ...] = (
    "invoice",
    "refund",
    "shipping",
    "password",
    "kubernetes",
    "weather",
    "recipe",
    "contract",
    "latency",
    "translate",
    "poem",
    "database",
)


def synthetic_traces(n: int, *, start: float, span_s: float, seed: int = 0) -> list[TraceRecord]:
    """``n`` records created uniformly in ``[start, start + span_s)``, in time order."""
    rng = random.Random(seed)
    times = sorted(start + rng.random() * span_s for _ in range(n))
    return [_record(rng, at) for at in times]


def _record(rng: random.Random, at: float) -> TraceRecord:
    route, target, model, median = ROUTES[rng.randrange(len(ROUTES))]
    team = rng.randrange(len(TEAMS))
    roll = rng.random()
    status = 200 if roll > 0.03 else (429 if roll < 0.01 else (500 if roll < 0.02 else 502))
    latency = rng.lognormvariate(0.0, 0.5) * median
    stream = rng.random() < 0.3
    words = " ".join(rng.choice(WORDS) for _ in range(6))
    prompt = rng.random() < 0.4
    variant = rng.choice(("control", "treatment")) if rng.random() < 0.2 else None
    input_tokens = rng.randrange(20, 2000)
    output_tokens = rng.randrange(1, 800) if status < 400 else 0
    return TraceRecord(
        id=f"{int(at * 1000):012x}{rng.getrandbits(80):020x}",
        trace_id=new_trace_id(),
        request_id=f"req_{rng.getrandbits(96):024x}",
        created_at=at,
        stream=stream,
        key_id=f"key-{team}-{rng.randrange(5)}",
        team_id=TEAMS[team],
        user=f"user-{rng.randrange(50)}",
        route=route,
        target=target,
        provider=target.split("/", 1)[0],
        upstream_model=model,
        prompt_name="support-reply" if prompt else None,
        prompt_version=rng.randrange(1, 4) if prompt else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=rng.randrange(0, input_tokens) if rng.random() < 0.2 else 0,
        cost_micros=input_tokens * 3 + output_tokens * 12,
        latency_ms=latency,
        ttft_ms=latency * rng.uniform(0.1, 0.5) if stream else None,
        upstream_ms=latency * 0.95,
        status_code=status,
        error=None if status < 400 else f"upstream answered {status}",
        error_type=None if status < 400 else ("rate_limited" if status == 429 else "upstream_error"),
        cache_hit=rng.random() < 0.05,
        metadata={"variant": variant} if variant else {},
        request_body={"messages": [{"role": "user", "content": f"{words} {rng.getrandbits(32):08x}"}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": f"about {words}"}}]},
    )
