"""Cascade routing: how much of a mixed workload the bundled demo model answers, at what quality and cost.

    python bench/cascade.py                      # 25 held-out items per demo skill + 50 off-skill questions
    python bench/cascade.py --per-skill 10       # shorter
    python bench/cascade.py --json out.json      # also save the run; --table out.json prints its Markdown

The workload mixes the demo model's seven skills (held-out items of lmdeck.local.skills, which it
answers from 20% to 100% right, see docs/demo-model.md) with general questions it cannot answer.
The "large" model is the FAKE upstream told every reference answer (``answers``), named ``gpt-4o``
so that lmdeck prices its tokens at gpt-4o's list price; the demo model costs nothing. One
``lmdeck serve`` runs three routes, and every item is sent, through the official openai SDK, to:

- ``demo``: the small model alone, with token log-probabilities (what the threshold sweep uses);
- ``large``: always the large model (the quality and cost baseline);
- ``smart``: ``strategy: cascade``, the demo model first, kept when its least token
  log-probability reaches ``--threshold``, else escalated to the large model.

Quality is judged by evaluators: each skill's checker from lmdeck.local.skills (exact text, the
final number of a worked sum, JSON equality) and lmdeck.evaluation's ``exact`` for the general
questions. Cost is the traces' ``cost_micros``. The table over other thresholds is computed from
the ``demo`` pass's log-probabilities and the ``large`` pass's answers and costs (the same
decision the cascade makes, which the measured ``smart`` row confirms item by item).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from lmdeck.evaluation.base import EvaluatorContext, Sample
from lmdeck.evaluation.registry import load_evaluators
from lmdeck.local.skills import SKILLS, Example, heldout_set
from lmdeck.protocol.evaluation import EvaluatorSpec
from lmdeck.testing.servers import GatewayProcess, fake_upstream_process, gateway_process

THRESHOLDS = (-0.02, -0.05, -0.1, -0.15, -0.25, -0.5, -1.0)

#: General questions the demo model was never trained on, with the large model's (reference) answers.
GENERAL = {
    "Who wrote Hamlet?": "William Shakespeare",
    "What is the boiling point of water at sea level in Celsius?": "100 degrees Celsius",
    "Translate 'good morning' into French.": "Bonjour",
    "What is the largest planet in the solar system?": "Jupiter",
    "Who painted the Mona Lisa?": "Leonardo da Vinci",
    "What gas do plants absorb from the air?": "Carbon dioxide",
    "How many continents are there?": "Seven",
    "What is the chemical symbol for gold?": "Au",
    "Name the longest river in Africa.": "The Nile",
    "What language is spoken in Brazil?": "Portuguese",
    "Summarize the plot of Romeo and Juliet in one sentence.": "Two young lovers from feuding families die.",
    "What is the speed of light in vacuum?": "About 299,792 km per second",
    "Who developed the theory of general relativity?": "Albert Einstein",
    "What is the square root of 144?": "12",
    "What is photosynthesis?": "How plants turn light, water and CO2 into sugar.",
    "Explain why the sky is blue.": "Air scatters blue light more than red.",
    "What is the freezing point of water in Fahrenheit?": "32 degrees Fahrenheit",
    "Which ocean is the largest?": "The Pacific Ocean",
    "Who was the first person to walk on the Moon?": "Neil Armstrong",
    "What is the currency of Japan?": "The yen",
    "Write a haiku about autumn.": "Red leaves drift and fall / cold wind hums through empty trees / the year exhales slow",
    "What does DNA stand for?": "Deoxyribonucleic acid",
    "How many legs does a spider have?": "Eight",
    "What is the tallest mountain on Earth?": "Mount Everest",
    "Give me a synonym for happy.": "Joyful",
    "What year did World War II end?": "1945",
    "What is the main ingredient of guacamole?": "Avocado",
    "Which planet is known as the Red Planet?": "Mars",
    "What is the hardest natural substance?": "Diamond",
    "Who invented the telephone?": "Alexander Graham Bell",
    "What is an antonym of ancient?": "Modern",
    "Describe a cat in three words.": "Curious, agile, independent",
    "What is the capital of Australia?": "Canberra",
    "What is the smallest prime number?": "2",
    "How many days are in a leap year?": "366",
    "What organ pumps blood through the body?": "The heart",
    "What is H2O commonly called?": "Water",
    "Who wrote 'Pride and Prejudice'?": "Jane Austen",
    "What is the plural of mouse?": "Mice",
    "Explain what a black hole is in one sentence.": "A region where gravity lets nothing, not even light, escape.",
    "What instrument has 88 keys?": "The piano",
    "Which metal is liquid at room temperature?": "Mercury",
    "Tell me a fun fact about octopuses.": "They have three hearts.",
    "What is the opposite of north?": "South",
    "What do bees make?": "Honey",
    "Write a one-line motto for a bakery.": "Fresh from our oven to your table.",
    "What is the primary language of Mexico?": "Spanish",
    "How many minutes are in an hour?": "Sixty",
    "What is the largest mammal?": "The blue whale",
    "Name a famous composer from Austria.": "Wolfgang Amadeus Mozart",
}


@dataclass
class Item:
    prompt: str
    answer: str
    kind: str  # a skill name, or "general"
    example: Example | None = None


@dataclass
class Outcome:
    kind: str
    demo_right: bool
    demo_min_logprob: float
    large_right: bool
    large_cost_micros: int
    smart_right: bool
    smart_tier: int
    smart_cost_micros: int


def workload(per_skill: int, seed: int) -> list[Item]:
    items = [Item(e.prompt, e.answer, name, e) for name in SKILLS for e in heldout_set(name, per_skill)]
    items += [Item(q, a, "general") for q, a in GENERAL.items()]
    random.Random(seed).shuffle(items)
    return items


def checker() -> Callable[[Item, str], bool]:
    """Whether an answer is right: the skill's checker, or lmdeck.evaluation's `exact` for general questions."""
    exact = load_evaluators().create(EvaluatorSpec(name="exact"), EvaluatorContext())

    def check(item: Item, output: str) -> bool:
        if item.example is None:
            return asyncio.run(exact.evaluate(Sample(output=output, expected=item.answer))).passed
        return SKILLS[item.kind].check(item.example, output)

    return check


def run(items: list[Item], threshold: float, workers: int) -> tuple[list[Outcome], dict[str, Any]]:
    check = checker()
    with fake_upstream_process() as fake, tempfile.TemporaryDirectory(prefix="lmdeck-cascade-") as tmp:
        fake.configure(answers={item.prompt: item.answer for item in items}, models=["gpt-4o"])
        large = {"provider": "openai", "model": "gpt-4o", "base_url": fake.base_url, "max_retries": 0}
        demo = {"provider": "local", "model": "demo", "timeout": 300, "max_retries": 0}
        config = {
            "default_routes": True,
            "routes": [
                {"name": "large", "targets": [large]},
                {
                    "name": "smart",
                    "strategy": "cascade",
                    "targets": [demo, large],
                    "cascade": {"checks": [{"kind": "logprob", "aggregate": "min", "min_logprob": threshold}]},
                },
            ],
        }
        with gateway_process(config, data_dir=Path(tmp) / "data", timeout=180) as gw:
            client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=300)

            def one(item: Item) -> Outcome:
                messages: Any = [{"role": "user", "content": item.prompt}]
                small = client.chat.completions.create(model="demo", messages=messages, logprobs=True)
                logprobs = small.choices[0].logprobs
                tokens = [t.logprob for t in (logprobs.content or [])] if logprobs is not None else []
                big_text, big_trace = _ask(gw, client, "large", messages)
                smart_text, smart_trace = _ask(gw, client, "smart", messages)
                return Outcome(
                    kind=item.kind,
                    demo_right=check(item, small.choices[0].message.content or ""),
                    demo_min_logprob=min(tokens) if tokens else float("-inf"),
                    large_right=check(item, big_text),
                    large_cost_micros=int(big_trace["cost_micros"]),
                    smart_right=check(item, smart_text),
                    smart_tier=int(smart_trace["metadata"]["routing"]["tier"]),
                    smart_cost_micros=int(smart_trace["cost_micros"]),
                )

            with ThreadPoolExecutor(workers) as pool:
                outcomes = list(pool.map(one, items))
            metrics = _escalation_metrics(gw)
    return outcomes, metrics


def _ask(gw: GatewayProcess, client: OpenAI, model: str, messages: Any) -> tuple[str, dict[str, Any]]:
    request_id = f"bench-{uuid.uuid4().hex}"
    answer = client.chat.completions.create(model=model, messages=messages, extra_headers={"x-request-id": request_id})
    return answer.choices[0].message.content or "", gw.trace(request_id)


def _escalation_metrics(gw: GatewayProcess) -> dict[str, Any]:
    import httpx

    text = httpx.get(f"{gw.url}/metrics", headers=gw.headers(), timeout=30).text
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("lmdeck_escalation_rate", "lmdeck_escalations_total", "lmdeck_routed_requests_total"))
    }


def summarize(outcomes: list[Outcome], threshold: float) -> dict[str, Any]:
    n = len(outcomes)
    large_cost = sum(o.large_cost_micros for o in outcomes)
    large_quality = sum(o.large_right for o in outcomes) / n
    measured = {
        "threshold": threshold,
        "items": n,
        "small_share": sum(o.smart_tier == 0 for o in outcomes) / n,
        "quality": sum(o.smart_right for o in outcomes) / n,
        "quality_always_large": large_quality,
        "quality_small_only": sum(o.demo_right for o in outcomes) / n,
        "cost_usd": sum(o.smart_cost_micros for o in outcomes) / 1e6,
        "cost_always_large_usd": large_cost / 1e6,
        "cost_saving": 1 - sum(o.smart_cost_micros for o in outcomes) / large_cost,
        "decisions_matching_the_sweep": sum((o.demo_min_logprob >= threshold) == (o.smart_tier == 0) for o in outcomes)
        / n,
    }
    sweep = []
    for t in THRESHOLDS:
        kept = [o.demo_min_logprob >= t for o in outcomes]
        right = sum(o.demo_right if k else o.large_right for o, k in zip(outcomes, kept, strict=True))
        cost = sum(0 if k else o.large_cost_micros for o, k in zip(outcomes, kept, strict=True))
        wrong_kept = sum(k and not o.demo_right for o, k in zip(outcomes, kept, strict=True))
        sweep.append(
            {
                "threshold": t,
                "small_share": sum(kept) / n,
                "quality": right / n,
                "quality_vs_large": right / n / large_quality,
                "wrong_answers_kept": wrong_kept,
                "cost_saving": 1 - cost / large_cost,
            }
        )
    per_kind = {}
    for kind in sorted({o.kind for o in outcomes}):
        group = [o for o in outcomes if o.kind == kind]
        per_kind[kind] = {
            "items": len(group),
            "small_share": sum(o.smart_tier == 0 for o in group) / len(group),
            "small_right_when_kept": _ratio(sum(o.demo_right for o in group if o.smart_tier == 0), group),
            "quality": sum(o.smart_right for o in group) / len(group),
            "quality_small_only": sum(o.demo_right for o in group) / len(group),
        }
    return {"measured": measured, "sweep": sweep, "per_kind": per_kind}


def _ratio(right: int, group: list[Outcome]) -> float | None:
    kept = sum(o.smart_tier == 0 for o in group)
    return right / kept if kept else None


def table(result: dict[str, Any]) -> str:
    m = result["measured"]
    lines = [
        f"Measured through `lmdeck serve` (threshold: least token logprob >= {m['threshold']}, {m['items']} items):",
        "",
        "| | answered by the demo model | quality (right answers) | cost | cost saved |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| always large (gpt-4o priced) | 0% | {m['quality_always_large']:.1%} | ${m['cost_always_large_usd']:.4f} | - |",
        f"| demo model only | 100% | {m['quality_small_only']:.1%} | $0 | 100% |",
        f"| **cascade** | **{m['small_share']:.1%}** | **{m['quality']:.1%}** | ${m['cost_usd']:.4f} "
        f"| **{m['cost_saving']:.1%}** |",
        "",
        "Other thresholds, from the same run's `demo` and `large` passes:",
        "",
        "| least token logprob >= | answered by the demo model | quality | quality vs always-large | wrong answers kept "
        "| cost saved |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["sweep"]:
        lines.append(
            f"| {row['threshold']} | {row['small_share']:.1%} | {row['quality']:.1%} | {row['quality_vs_large']:.1%} "
            f"| {row['wrong_answers_kept']} | {row['cost_saving']:.1%} |"
        )
    lines += [
        "",
        "Per kind of question (cascade at the measured threshold):",
        "",
        "| kind | items | answered by the demo model | right when kept | cascade quality | demo model alone |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, row in result["per_kind"].items():
        kept = "-" if row["small_right_when_kept"] is None else f"{row['small_right_when_kept']:.1%}"
        lines.append(
            f"| {kind} | {row['items']} | {row['small_share']:.1%} | {kept} | {row['quality']:.1%} "
            f"| {row['quality_small_only']:.1%} |"
        )
    return "\n".join(lines)


def learned(result: dict[str, Any], per_skill: int, seed: int) -> dict[str, Any]:
    """A learned router fitted on a saved run: each item labelled by whether the demo model was right."""
    import torch

    from lmdeck.evaluation.router_training import Example as Labelled
    from lmdeck.evaluation.router_training import fit
    from lmdeck.local.embeddings import SentenceEmbedder, minilm_dir

    items = workload(per_skill, seed)
    outcomes = result["outcomes"]
    if len(items) != len(outcomes):
        raise SystemExit("the saved run was made with another --per-skill or --seed")
    examples = [
        Labelled(
            str(i),
            item.prompt,
            0 if o["demo_right"] else 1,
            0 if o["demo_right"] else 1,
            0 if o["demo_right"] else o["large_cost_micros"],
        )
        for i, (item, o) in enumerate(zip(items, outcomes, strict=True))
    ]
    embedder = SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu"))

    def embed(texts: list[str]) -> list[list[float]]:
        vectors, _ = embedder.encode(texts)
        return [[float(v) for v in row] for row in vectors.tolist()]

    _, report = fit("smart", ["local:demo", "openai:gpt-4o"], examples, embed, seed=seed)
    return report.to_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--per-skill", type=int, default=25, help="held-out items per demo skill")
    parser.add_argument("--threshold", type=float, default=-0.15, help="least token logprob the cascade keeps")
    parser.add_argument("--workers", type=int, default=4, help="items in flight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="save the run here")
    parser.add_argument("--table", type=Path, help="print the Markdown of a saved run and exit")
    parser.add_argument(
        "--learned", type=Path, help="fit a learned router on a saved run (labels: was the demo model right) and exit"
    )
    args = parser.parse_args(argv)
    if args.learned:
        print(json.dumps(learned(json.loads(args.learned.read_text()), args.per_skill, args.seed), indent=2))
        return
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    items = workload(args.per_skill, args.seed)
    print(f"{len(items)} items: {dict(Counter(i.kind for i in items))}", file=sys.stderr)
    outcomes, metrics = run(items, args.threshold, args.workers)
    result = summarize(outcomes, args.threshold)
    result["metrics"] = metrics
    result["outcomes"] = [asdict(o) for o in outcomes]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(json.dumps(result["measured"], indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
