"""Synthetic traffic of the demo model's skills, as stored traces: for drift tests and measurements.

    records = skill_traces("demo", {"add": 1.0}, 150, since=t0, until=t1, seed=1)            # only sums
    records = skill_traces("demo", TRAINING_MIX, 150, since=t0, until=t1, seed=2)           # the usual mix
    store.insert(records)

Each record is a successful chat completion whose request asks one skill's question
(:data:`lmdeck.local.skills.SKILLS`) and whose response is that skill's right answer (output tokens:
its characters, as the demo model counts them). Ids, times and examples are deterministic for a seed;
ids keep lmdeck's layout (48-bit milliseconds, then random hex) so drift's id-keyed sampling applies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from lmdeck.local.skills import SKILLS
from lmdeck.protocol.traces import TraceRecord


def skill_traces(
    route: str,
    mix: Mapping[str, float],
    count: int,
    *,
    since: float,
    until: float,
    seed: int,
    team_id: str | None = None,
    prompt_version: int | None = None,
    answer: str | None = None,
) -> list[TraceRecord]:
    """``count`` traces spread evenly over ``[since, until)``, skills drawn by the weights of ``mix``.

    ``answer`` replaces every answer's text (a refusal, say) when given.
    """
    rng = random.Random(seed)
    names = list(mix)
    weights = [mix[name] for name in names]
    records = []
    for i in range(count):
        example = SKILLS[rng.choices(names, weights)[0]].make(rng)
        created = since + (until - since) * (i + 0.5) / count
        text = example.answer if answer is None else answer
        records.append(
            TraceRecord(
                id=f"{int(created * 1000) & ((1 << 48) - 1):012x}{rng.getrandbits(80):020x}",
                request_id=f"req-{seed}-{i}",
                created_at=created,
                route=route,
                target=f"local/{route}",
                provider="local",
                upstream_model="demo",
                team_id=team_id,
                prompt_version=prompt_version,
                input_tokens=len(example.prompt),
                output_tokens=len(text),
                latency_ms=50.0,
                request_body={"model": route, "messages": [{"role": "user", "content": example.prompt}]},
                response_body={
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                },
            )
        )
    return records
