"""Continuous batching against one-at-a-time generation, on the local engine, in the same run.

    python bench/local_engine.py                              # the demo model, 1/8/32 clients, fp32 and int8
    python bench/local_engine.py --concurrency 1,8,32 --tokens 64 --rounds 2 --quantize none,int8

For each concurrency ``c``, ``c`` clients each send ``rounds`` requests back to back
(held-out demo prompts, greedy, exactly ``--tokens`` generated tokens each). The same
requests go to two engines built from the same model:

- ``batched``: the engine as the gateway runs it (continuous batching, up to 32 rows);
- ``sequential``: ``max_batch_size=1``, so requests are generated one at a time in
  arrival order (the baseline).

Printed per row: generated tokens/s, time to first token (p50, p95, from submission,
so it includes the wait for a row), the mean number of rows per decode step, and the
tokens/s ratio against the sequential baseline of the same model at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lmdeck.local.chat_template import ChatTemplate
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.engine import LocalEngine
from lmdeck.local.loading import load_causal_lm
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.sampling import SamplingParams
from lmdeck.local.skills import SKILLS, heldout_set


@dataclass
class Result:
    mode: str
    quantize: str
    concurrency: int
    tokens: int
    seconds: float
    ttft_ms: list[float]
    mean_batch: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def prompts(count: int) -> list[str]:
    template = ChatTemplate()
    pool = [e.prompt for skill in SKILLS for e in heldout_set(skill, 20)]
    return [template.render([{"role": "user", "content": pool[i % len(pool)]}]) for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(lm: LocalCausalLM, mode: str, quantize: str, concurrency: int, rounds: int, tokens: int) -> Result:
    engine = LocalEngine(lm, max_batch_size=32 if mode == "batched" else 1, max_queue=1024)
    texts = prompts(concurrency * rounds)
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    ttft: list[float] = []
    generated = 0

    async def client(index: int) -> None:
        nonlocal generated
        for r in range(rounds):
            started = time.perf_counter()
            handle = engine.submit(lm.encode(texts[index * rounds + r]), params)
            first = True
            while True:
                event = await handle.next_event()
                if first:
                    ttft.append((time.perf_counter() - started) * 1000)
                    first = False
                if event.finish_reason is not None:
                    break
            generated += handle.completion_tokens

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        seconds = time.perf_counter() - started
    finally:
        engine.close()
    return Result(mode, quantize, concurrency, generated, seconds, ttft, engine.stats.mean_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEMO_MODEL_DIR)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    parser.add_argument("--quantize", default="none,int8")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(
        f"model {args.model_dir.name}, {args.tokens} tokens per request, {args.rounds} requests per client, "
        f"torch threads {torch.get_num_threads()}"
    )
    header = f"{'quantize':8} {'mode':10} {'conc':>4} {'tokens/s':>9} {'ttft p50':>9} {'ttft p95':>9} {'rows/step':>9} {'vs seq':>7}"
    print(header)
    results: list[Result] = []
    for quantize in args.quantize.split(","):
        lm = load_causal_lm(args.model_dir, name="demo", device=torch.device("cpu"), quantize=quantize)
        asyncio.run(run(lm, "batched", quantize, 1, 1, 8))  # warm-up
        for concurrency in levels:
            pair = {
                mode: asyncio.run(run(lm, mode, quantize, concurrency, args.rounds, args.tokens))
                for mode in ("sequential", "batched")
            }
            for mode in ("sequential", "batched"):
                r = pair[mode]
                ratio = r.tokens_per_s / pair["sequential"].tokens_per_s
                print(
                    f"{quantize:8} {mode:10} {concurrency:>4} {r.tokens_per_s:>9.0f} "
                    f"{percentile(r.ttft_ms, 0.5):>7.0f}ms {percentile(r.ttft_ms, 0.95):>7.0f}ms "
                    f"{r.mean_batch:>9.1f} {ratio:>6.2f}x",
                    flush=True,
                )
                results.append(r)
    base = {(r.concurrency, r.mode): r for r in results if r.quantize == "none"}
    for r in results:
        if r.quantize != "none" and (r.concurrency, r.mode) in base:
            speedup = r.tokens_per_s / base[(r.concurrency, r.mode)].tokens_per_s
            print(f"{r.quantize} vs fp32, {r.mode} at {r.concurrency}: {speedup:.2f}x tokens/s")


if __name__ == "__main__":
    main()
