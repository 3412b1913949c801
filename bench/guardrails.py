"""Guardrails: the latency each one adds to a request, and how well the detectors find what they look for.

    python bench/guardrails.py                         # 300 requests per route, then quality
    python bench/guardrails.py --requests 100 --no-quality
    python bench/guardrails.py --only pii,prompt_injection

Latency: one in-process pipeline of lmdeck's guardrail steps (``guard_input``,
``guard_output``, built by :class:`~lmdeck.guardrails.service.GuardrailService` from a real
configuration) around an echoing terminal (a FAKE upstream: no network, it answers with the
user's message), with one route per guardrail and a ``baseline`` route with none. Requests
go round-robin over the routes, so every route sees the same machine state; a route's
added latency is its p50/p99 minus the baseline's, in microseconds, and the ratio is route
over baseline. Each guardrail is attached with action ``flag`` (nothing is refused or
rewritten, so every request runs the whole path) on the stage it checks; model-backed ones
embed with the bundled all-MiniLM-L6-v2 through :class:`~lmdeck.local.embeddings.EmbeddingBatcher`
on the CPU, as the gateway's ``embed`` route does. Prompts are short everyday requests, a
third with an e-mail address or a key in them.

Quality: PII recall/precision per entity type on ``tests/data/guardrails/pii*.jsonl``
(:func:`lmdeck.guardrails.quality.guardrail_quality`, exact spans); secrets on
``secrets.jsonl``; prompt-injection precision/recall at the default threshold on the held-out
split of ``injection.jsonl`` (never trained on), through the guardrail itself.

Prints one JSON document (``--out`` writes it too); timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmdeck.guardrails.base import GuardContext, GuardResources
from lmdeck.guardrails.builtin.injection import default_threshold
from lmdeck.guardrails.config import GuardrailConfig
from lmdeck.guardrails.quality import format_quality, guardrail_quality, load_labelled_spans, micro_average
from lmdeck.guardrails.registry import load_guardrails
from lmdeck.guardrails.service import GuardrailService
from lmdeck.guardrails.steps import steps
from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder, minilm_dir
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.pipeline.order import Pipeline, build_pipeline
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "guardrails"

#: Each guardrail measured: its definition and the stage it is attached to.
GUARDRAILS: dict[str, tuple[dict[str, Any], str]] = {
    "regex": ({"type": "regex", "options": {"words": ["damn", "forbidden"]}}, "input"),
    "pii": ({"type": "pii"}, "input"),
    "secrets": ({"type": "secrets"}, "input"),
    "max_input_tokens": ({"type": "max_input_tokens", "options": {"max_tokens": 4096}}, "input"),
    "contains": ({"type": "contains"}, "output"),
    "json_output": ({"type": "json_output"}, "output"),
    "output_language": ({"type": "output_language", "options": {"allowed": ["en"]}}, "output"),
    "prompt_injection": ({"type": "prompt_injection"}, "input"),
    "topics": (
        {
            "type": "topics",
            "options": {
                "topics": {
                    "support": [
                        "questions about an order, a delivery, an invoice or an account",
                        "Where is my parcel?",
                    ],
                    "writing": ["help writing or editing an e-mail, a letter or a report"],
                }
            },
        },
        "input",
    ),
}

PROMPTS = [
    "Where is my order? It was due on Monday.",
    "Can you help me write a polite e-mail to my landlord about the heating?",
    "My email is ana.lopez@example.org, please update my account.",
    "Summarise this: the meeting moved to Thursday and the budget was approved.",
    "What's the difference between a list and a tuple in Python?",
    "Use the key AKIAIOSFODNN7EXAMPLE to read the bucket and tell me what is in it.",
    "I was charged twice for my subscription this month, can I get a refund?",
    "Translate 'good morning, how are you?' into Spanish.",
    "Call me on +44 20 7946 0958 after five, thanks.",
]


class EchoTerminal:
    """A FAKE upstream: answers with the last user message, at once, without any network."""

    async def __call__(self, ctx: RequestContext) -> Result:
        assert isinstance(ctx.body, ChatCompletionRequest)
        text = next(m.text() for m in reversed(ctx.body.messages) if m.role == "user")
        message = {"role": "assistant", "content": text}
        return Completed(
            ChatCompletionResponse.model_validate(
                {"id": "b", "created": 0, "model": "m", "choices": [{"message": message, "finish_reason": "stop"}]}
            )
        )


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def build(names: list[str], resources: GuardResources) -> tuple[Pipeline, list[str]]:
    """The guarded pipeline with a route per guardrail in ``names`` and a ``baseline`` route, and the route names."""
    routes: list[dict[str, Any]] = [{"name": "baseline", "targets": [{"model": "m"}]}]
    for name in names:
        stage = GUARDRAILS[name][1]
        routes.append(
            {"name": name, "targets": [{"model": "m"}], "guardrails": {stage: [{"use": name, "action": "flag"}]}}
        )
    settings = Settings.model_validate(
        {
            "default_routes": False,
            "routes": routes,
            "guardrails": {"definitions": {name: GUARDRAILS[name][0] for name in names}},
        }
    )
    config = GuardrailConfig.build(settings, load_guardrails(), resources=resources)
    by_name = {r.name: r for r in settings.routes}
    service = GuardrailService(config, by_name.get)
    pipeline = build_pipeline(
        steps(service, lambda c, name: None, lambda name: by_name[name].fallbacks if name in by_name else []),
        terminal=EchoTerminal(),
    )
    return pipeline, [r["name"] for r in routes]


async def one_request(pipeline: Pipeline, route: str, prompt: str) -> float:
    """Microseconds one chat request takes through the pipeline on ``route``."""
    body = ChatCompletionRequest.model_validate({"model": route, "messages": [{"role": "user", "content": prompt}]})
    ctx = RequestContext(kind="chat", body=body, request_id="b", trace=TraceRecord(), route_name=route)
    started = time.perf_counter_ns()
    result = await pipeline.run(ctx)
    elapsed = (time.perf_counter_ns() - started) / 1000.0
    if isinstance(result, Streamed):
        raise RuntimeError("the bench asked for no stream")
    return elapsed


async def latency(pipeline: Pipeline, routes: list[str], requests: int, warmup: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {route: [] for route in routes}
    for index in range(warmup + requests):
        prompt = PROMPTS[index % len(PROMPTS)]
        for route in routes:
            micros = await one_request(pipeline, route, prompt)
            if index >= warmup:
                samples[route].append(micros)
    base = samples["baseline"]
    base_p50, base_p99 = percentile(base, 50), percentile(base, 99)
    report: dict[str, Any] = {"baseline": {"p50_us": round(base_p50, 1), "p99_us": round(base_p99, 1)}}
    for route in routes[1:]:
        p50, p99 = percentile(samples[route], 50), percentile(samples[route], 99)
        report[route] = {
            "stage": GUARDRAILS[route][1],
            "p50_us": round(p50, 1),
            "p99_us": round(p99, 1),
            "added_p50_us": round(p50 - base_p50, 1),
            "added_p99_us": round(p99 - base_p99, 1),
            "ratio_p50": round(p50 / base_p50, 2),
            "ratio_p99": round(p99 / base_p99, 2),
        }
    return report


async def quality(resources: GuardResources) -> dict[str, Any]:
    registry = load_guardrails()
    out: dict[str, Any] = {}
    if "pii" in registry.names():
        examples = [e for path in sorted(DATA.glob("pii*.jsonl")) for e in load_labelled_spans(path)]
        report = await guardrail_quality(registry.create("pii", {}, resources), examples)
        pooled = micro_average(report)
        out["pii"] = {
            "texts": len(examples),
            "per_entity": {
                k: {"recall": round(q.recall, 3), "precision": round(q.precision, 3), "gold": q.support}
                for k, q in report.items()
            },
            "all": {"recall": round(pooled.recall, 3), "precision": round(pooled.precision, 3)},
        }
        print(format_quality(report), file=sys.stderr)
    if "secrets" in registry.names() and (DATA / "secrets.jsonl").exists():
        examples = load_labelled_spans(DATA / "secrets.jsonl")
        report = await guardrail_quality(registry.create("secrets", {}, resources), examples, match="overlap")
        pooled = micro_average(report)
        out["secrets"] = {
            "texts": len(examples),
            "recall": round(pooled.recall, 3),
            "precision": round(pooled.precision, 3),
        }
    guard = registry.create("prompt_injection", {}, resources)
    rows = [json.loads(line) for line in (DATA / "injection.jsonl").read_text(encoding="utf-8").splitlines() if line]
    heldout = [row for row in rows if row["split"] == "heldout"]
    tp = fp = fn = 0
    for row in heldout:
        blocked = (await guard.check(row["text"], GuardContext(stage="input", role="user"))).blocked
        injected = row["label"] == "injection"
        tp, fp, fn = tp + (blocked and injected), fp + (blocked and not injected), fn + (injected and not blocked)
    out["prompt_injection"] = {
        "heldout_texts": len(heldout),
        "threshold": default_threshold(),
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "true_pos": tp,
        "false_pos": fp,
        "false_neg": fn,
    }
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    embedder = SentenceEmbedder.load(minilm_dir(), torch.device("cpu"))
    batcher = EmbeddingBatcher(embedder)

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        vectors, _ = await batcher.embed(list(texts))
        return vectors

    resources = GuardResources(embed=embed)
    available = load_guardrails().names()
    names = [n for n in (args.only.split(",") if args.only else GUARDRAILS) if n in available]
    try:
        pipeline, routes = build(names, resources)
        result: dict[str, Any] = {
            "requests_per_route": args.requests,
            "torch_threads": torch.get_num_threads(),
            "latency": await latency(pipeline, routes, args.requests, args.warmup),
        }
        if args.quality:
            result["quality"] = await quality(resources)
        result["skipped"] = sorted(set(GUARDRAILS) - set(names))
        return result
    finally:
        batcher.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per route")
    parser.add_argument("--warmup", type=int, default=20, help="requests per route before measuring")
    parser.add_argument("--only", default="", help="comma-separated guardrail names (default: all installed)")
    parser.add_argument("--no-quality", dest="quality", action="store_false")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    lat = result["latency"]
    print("\nguardrail           stage   added p50 us  added p99 us  ratio p50  ratio p99", file=sys.stderr)
    for name, row in lat.items():
        if name != "baseline":
            print(
                f"{name:18s}  {row['stage']:6s}  {row['added_p50_us']:12.1f}  {row['added_p99_us']:12.1f}  {row['ratio_p50']:9.2f}  {row['ratio_p99']:9.2f}",
                file=sys.stderr,
            )
    print(f"baseline p50 {lat['baseline']['p50_us']} us, p99 {lat['baseline']['p99_us']} us", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
