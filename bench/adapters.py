"""LoRA adapters mixed in one batch against the base model alone, on the local engine, in the same run.

    python bench/adapters.py --threads 1                      # 16 rows, 64 tokens each, rank-8 adapters
    python bench/adapters.py --rows 32 --tokens 64 --rank 8 --repeats 3

Random rank-``rank`` LoRA adapters on every projection of the demo model are written to a
temporary directory first. ``rows`` requests are sent at once (held-out demo prompts, greedy,
exactly ``--tokens`` generated tokens each), so they share the batch:

- ``base``: an engine that never loaded an adapter (the model as loaded, not wrapped): the baseline;
- ``base, wrapped``: the same requests without adapters on an engine that has loaded four (its linear
  layers then carry the per-row LoRA of :mod:`lmdeck.local.lora`);
- ``1 adapter``, ``2 adapters``, ``4 adapters``: the rows spread evenly over that many adapters.

Each mode runs ``--repeats`` times, the modes interleaved so that load on the machine falls on all
alike; printed: the median generated tokens/s, the mean rows per decode step and the ratio to ``base``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lmdeck.local.chat_template import ChatTemplate
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.engine import LocalEngine
from lmdeck.local.loading import load_causal_lm
from lmdeck.local.random_adapter import write_random_adapter
from lmdeck.local.sampling import SamplingParams
from lmdeck.local.skills import SKILLS, heldout_set

MODES: dict[str, int] = {"base": 0, "base, wrapped": 0, "1 adapter": 1, "2 adapters": 2, "4 adapters": 4}


def prompts(count: int) -> list[str]:
    template = ChatTemplate()
    pool = [e.prompt for skill in SKILLS for e in heldout_set(skill, 20)]
    return [template.render([{"role": "user", "content": pool[i % len(pool)]}]) for i in range(count)]


async def run(engine: LocalEngine, adapters: list[Path | None], tokens: int) -> tuple[float, float]:
    """Send one request per entry of ``adapters`` at once; (generated tokens/s, mean rows per decode step)."""
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    texts = prompts(len(adapters))
    steps, rows = engine.stats.steps, engine.stats.step_rows
    started = time.perf_counter()
    handles = [
        engine.submit(engine.lm.encode(text), params, adapter=adapter)
        for text, adapter in zip(texts, adapters, strict=True)
    ]
    for handle in handles:
        await handle.text()
    seconds = time.perf_counter() - started
    generated = sum(h.completion_tokens for h in handles)
    return generated / seconds, (engine.stats.step_rows - rows) / max(1, engine.stats.steps - steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16, help="requests sent at once (they share the batch)")
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the adapters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [write_random_adapter(DEMO_MODEL_DIR, Path(tmp) / f"a{i}", seed=i, rank=args.rank) for i in range(4)]
        device = torch.device("cpu")
        plain = LocalEngine(load_causal_lm(DEMO_MODEL_DIR, name="demo", device=device), max_batch_size=args.rows)
        mixed = LocalEngine(
            load_causal_lm(DEMO_MODEL_DIR, name="demo", device=device), max_batch_size=args.rows, max_adapters=4
        )

        async def measure() -> dict[str, list[tuple[float, float]]]:
            await run(plain, [None] * args.rows, 8)  # warm-up
            await run(mixed, [dirs[i % 4] for i in range(args.rows)], 8)  # warm-up, and loads all four
            results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.repeats):
                for mode, count in MODES.items():
                    engine = plain if mode == "base" else mixed
                    chosen = [dirs[i % count] if count else None for i in range(args.rows)]
                    results[mode].append(await run(engine, chosen, args.tokens))
            return results

        try:
            results = asyncio.run(measure())
        finally:
            plain.close()
            mixed.close()
    print(
        f"model demo, {args.rows} requests at once, {args.tokens} tokens each, rank-{args.rank} LoRA on every "
        f"projection, median of {args.repeats}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'mode':14} {'tokens/s':>9} {'rows/step':>9} {'vs base':>8}")
    base = statistics.median(t for t, _ in results["base"])
    for mode, runs in results.items():
        speed = statistics.median(t for t, _ in runs)
        rows = statistics.mean(r for _, r in runs)
        print(f"{mode:14} {speed:>9.0f} {rows:>9.1f} {speed / base:>7.2f}x")


if __name__ == "__main__":
    main()
