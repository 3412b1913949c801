"""Simulated production for the demo model: mixed traffic through a running gateway, and users who judge it.

    .venv/bin/python scripts/simulate_traffic.py --base-url http://127.0.0.1:4000 --api-key sk-lmdeck-... \\
        --model demo --count 200 --rate 5 --mix count=0.4,add=0.2,capital=0.2,upper=0.2 \\
        --corrections annotations --report sim.json

Each request is one of the demo model's skills (``lmdeck.local.skills``: add, sub, reverse, upper,
count, capital, extract), drawn by ``--mix`` from the skill's *training* split (the held-out split
stays unseen, so a model trained on this traffic is still judged fairly), sent with the official
``openai`` SDK as a chat completion that carries ``metadata: {"skill": NAME}`` and the tag
``skill:NAME`` (``extra_body``), so traces filter by ``skill=NAME``.

The labeller plays the users: for a share of the answers (``--feedback-share``) it checks the answer
with the skill's own checker and posts feedback (``value`` 1 right, 0 wrong; ``POST /api/feedback``).
A wrong answer is then corrected (``--correction-share`` of them) as ``--corrections`` says:

* ``feedback``: the feedback entry carries ``correction`` (the right answer, with its working);
* ``annotations``: the trace is sent to the annotation queue ``--queue`` (made if missing) and a
  reviewer claims and labels it with the correction;
* ``none``: thumbs only.

Prints a summary (per skill: sent, right, accuracy, feedback, corrections) and writes it as JSON with
``--report``. Exits 1 when any request failed. ``--seed`` makes a run reproducible.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import openai

from lmdeck.local.skills import SKILLS, Example
from lmdeck.sdk import Client, LMDeckError

DEFAULT_MIX = "count=0.4,add=0.15,sub=0.1,capital=0.15,upper=0.1,reverse=0.1"


@dataclass
class SkillTally:
    """What happened to one skill's requests."""

    sent: int = 0
    right: int = 0
    failed: int = 0
    feedback: int = 0
    corrections: int = 0

    @property
    def accuracy(self) -> float | None:
        answered = self.sent - self.failed
        return self.right / answered if answered else None


@dataclass
class Summary:
    skills: dict[str, SkillTally] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "requests": sum(t.sent for t in self.skills.values()),
            "failed": sum(t.failed for t in self.skills.values()),
            "skills": {name: {**asdict(t), "accuracy": t.accuracy} for name, t in sorted(self.skills.items())},
        }


def parse_mix(text: str) -> dict[str, float]:
    """``count=0.4,add=0.2`` → {"count": 0.4, "add": 0.2}; names must be demo skills, weights positive."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in SKILLS:
            raise ValueError(f"unknown skill {name!r} in --mix (skills: {', '.join(SKILLS)})")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"--mix {part!r}: the weight must be a number") from None
        if not mix[name] > 0:
            raise ValueError(f"--mix {part!r}: the weight must be positive")
    if not mix:
        raise ValueError("--mix names no skill")
    return mix


class Labeller:
    """Users judging answers: thumbs through ``/api/feedback``, corrections by feedback or annotation queue."""

    def __init__(
        self,
        client: Client,
        *,
        corrections: str,
        queue: str,
        rng: random.Random,
        feedback_share: float,
        correction_share: float,
    ) -> None:
        self.client = client
        self.corrections = corrections
        self.queue = queue
        self.rng = rng
        self.feedback_share = feedback_share
        self.correction_share = correction_share
        self._queue_ready = False

    def _ensure_queue(self) -> None:
        if not self._queue_ready:
            try:
                self.client.get(f"/api/annotation-queues/{self.queue}")
            except LMDeckError as exc:
                if exc.status != 404:
                    raise
                spec = {"name": self.queue, "description": "answers users marked wrong", "categories": ["wrong"]}
                self.client.put(f"/api/annotation-queues/{self.queue}", json=spec)
            self._queue_ready = True

    def _annotate(self, trace_id: str, correction: str) -> None:
        self._ensure_queue()
        # A queue takes stored traces; the trace's store write follows its answer by a moment.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self.client.post(
                    f"/api/annotation-queues/{self.queue}/items",
                    json={"trace_ids": [trace_id], "reason": "user: wrong"},
                )
                break
            except LMDeckError as exc:
                if exc.code != "trace_not_found" or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        item = self.client.post(f"/api/annotation-queues/{self.queue}/claim", json={})
        # A reviewer labels what they claimed: the queue hands out the oldest item, which is this one
        # unless other reviewers left items behind; label whatever came, with its own right answer.
        label = {"claim": item["claim"], "category": "wrong", "correction": correction, "score": 0.0}
        if item["trace_id"] != trace_id:
            label = {"claim": item["claim"], "category": "wrong", "score": 0.0}
        self.client.post(f"/api/annotation-queues/{self.queue}/items/{item['id']}/label", json=label)

    def judge(self, trace_id: str, example: Example, right: bool, tally: SkillTally) -> None:
        """Maybe post feedback on one answer, and maybe correct it when it is wrong."""
        if self.rng.random() >= self.feedback_share:
            return
        correct = not right and self.corrections != "none" and self.rng.random() < self.correction_share
        body: dict[str, Any] = {"value": 1 if right else 0, "source": "user"}
        if correct and self.corrections == "feedback":
            body["correction"] = example.answer
        stored = self.client.feedback.send(trace_id, **body)
        tally.feedback += 1
        if correct:
            if self.corrections == "annotations":
                self._annotate(stored["trace_id"], example.answer)  # the trace's own id, not the request id
            tally.corrections += 1


def simulate(
    base_url: str,
    api_key: str,
    *,
    model: str = "demo",
    mix: Mapping[str, float],
    count: int,
    rate: float = 0.0,
    seed: int = 0,
    corrections: str = "none",
    queue: str = "flywheel-review",
    feedback_share: float = 1.0,
    correction_share: float = 1.0,
    max_tokens: int = 64,
) -> Summary:
    """Send ``count`` requests (at most ``rate`` a second; 0: as fast as answered) and judge them."""
    rng = random.Random(seed)
    names, weights = list(mix), [mix[n] for n in mix]
    openai_client = openai.OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key, max_retries=0)
    summary = Summary()
    started = time.monotonic()
    with Client(base_url, api_key=api_key) as client:
        labeller = Labeller(
            client,
            corrections=corrections,
            queue=queue,
            rng=random.Random(seed + 1),
            feedback_share=feedback_share,
            correction_share=correction_share,
        )
        for i in range(count):
            if rate > 0:
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            name = rng.choices(names, weights)[0]
            example = SKILLS[name].sample(rng, "train")
            tally = summary.skills.setdefault(name, SkillTally())
            tally.sent += 1
            try:
                raw = openai_client.chat.completions.with_raw_response.create(
                    model=model,
                    messages=[{"role": "user", "content": example.prompt}],
                    max_tokens=max_tokens,
                    temperature=0,
                    metadata={"skill": name},
                    extra_body={"tags": [f"skill:{name}"]},
                )
            except (openai.APIError, httpx.HTTPError) as exc:
                tally.failed += 1
                print(f"request {i} ({name}) failed: {exc}", file=sys.stderr)
                continue
            answer = raw.parse().choices[0].message.content or ""
            trace_id = raw.headers["x-request-id"]
            summary.trace_ids.append(trace_id)
            right = SKILLS[name].check(example, answer)
            tally.right += right
            labeller.judge(trace_id, example, right, tally)
    summary.wall_s = time.monotonic() - started
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:4000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="demo", help="the route (or registry:NAME@ALIAS) to send to")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"skill=weight,... (default {DEFAULT_MIX})")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="requests a second (0: back to back)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corrections", choices=("none", "feedback", "annotations"), default="feedback")
    parser.add_argument("--queue", default="flywheel-review", help="the annotation queue (--corrections annotations)")
    parser.add_argument("--feedback-share", type=float, default=1.0, help="share of answers users rate, 0..1")
    parser.add_argument("--correction-share", type=float, default=1.0, help="share of wrong answers corrected")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--report", help="write the summary as JSON here")
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    summary = simulate(
        args.base_url,
        args.api_key,
        model=args.model,
        mix=mix,
        count=args.count,
        rate=args.rate,
        seed=args.seed,
        corrections=args.corrections,
        queue=args.queue,
        feedback_share=args.feedback_share,
        correction_share=args.correction_share,
        max_tokens=args.max_tokens,
    )
    report = summary.to_dict()
    for name, tally in report["skills"].items():
        accuracy = "-" if tally["accuracy"] is None else f"{tally['accuracy']:.0%}"
        print(
            f"{name:8} sent {tally['sent']:4}  right {accuracy:>5}  feedback {tally['feedback']:4}  "
            f"corrections {tally['corrections']:4}  failed {tally['failed']}"
        )
    print(f"{report['requests']} requests in {report['wall_s']:.1f}s")
    if args.report:
        with open(args.report, "w") as out:
            json.dump(report, out, indent=2)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
