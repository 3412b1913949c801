"""Input drift tests on real MiniLM embeddings of the demo model's prompts: false alarms and power.

    python bench/drift.py                           # 100 no-drift trials, every skill pair, partial shifts
    python bench/drift.py --trials 30 --sizes 60

A pool of prompts per skill (:data:`lmdeck.local.skills.SKILLS`) is embedded once with the bundled
MiniLM; trials then draw windows from the pools (seeded: the counts repeat on any machine):

- ``no drift``: both windows drawn from ``TRAINING_MIX``; the share of trials with p < alpha is the
  false-alarm rate (a valid test keeps it near alpha);
- ``skill swap``: every ordered pair of skills (one skill's prompts, then another's): the share detected;
- ``partial``: the current window moves ``share`` of the traffic to one new skill, the rest as before.

Both input tests are measured in the same run: the kernel MMD permutation test (the default,
``input_mmd``) and the classifier two-sample test (``input_classifier``). Prints tables and one JSON
document; the seconds per test depend on the machine and its load, the rest does not.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from lmdeck.local.skills import SKILLS, TRAINING_MIX
from lmdeck.monitoring.drift.embedder import PromptEmbedder
from lmdeck.monitoring.drift.twosample import TwoSampleResult, classifier_test, mmd_test

Matrix = NDArray[np.float64]
Test = Callable[[Matrix, Matrix, int], TwoSampleResult]

TESTS: dict[str, Test] = {
    "input_mmd": lambda x, y, seed: mmd_test(x, y, permutations=999, seed=seed),
    "input_classifier": lambda x, y, seed: classifier_test(x, y, seed=seed),
}


def pools(per_skill: int, embed: PromptEmbedder) -> dict[str, Matrix]:
    rng = random.Random(0)
    texts = {name: [skill.make(rng).prompt for _ in range(per_skill)] for name, skill in SKILLS.items()}
    flat = [t for name in SKILLS for t in texts[name]]
    vectors = embed(flat)
    return {name: vectors[i * per_skill : (i + 1) * per_skill] for i, name in enumerate(SKILLS)}


def draw(pool: dict[str, Matrix], mix: dict[str, float], n: int, rng: np.random.Generator) -> Matrix:
    names = list(mix)
    weights = np.array([mix[k] for k in names]) / sum(mix.values())
    picks = rng.choice(len(names), size=n, p=weights)
    return np.vstack([pool[names[k]][rng.integers(len(pool[names[k]]))] for k in picks])


def rate(cases: list[tuple[Matrix, Matrix]], test: Test, alpha: float) -> tuple[float, float]:
    began = time.perf_counter()
    hits = sum(test(x, y, seed).p_value < alpha for seed, (x, y) in enumerate(cases))
    return hits / len(cases), (time.perf_counter() - began) / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="no-drift and partial-shift trials per size")
    parser.add_argument("--sizes", default="60,200", help="comma-separated prompts per window")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--per-skill", type=int, default=200, help="prompts embedded per skill")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    began = time.perf_counter()
    pool = pools(args.per_skill, PromptEmbedder())
    embed_s = time.perf_counter() - began
    rng = np.random.default_rng(1)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for n in sizes:
        scenarios: dict[str, list[tuple[Matrix, Matrix]]] = {
            "no drift": [
                (draw(pool, TRAINING_MIX, n, rng), draw(pool, TRAINING_MIX, n, rng)) for _ in range(args.trials)
            ],
            "skill swap": [
                (draw(pool, {a: 1.0}, n, rng), draw(pool, {b: 1.0}, n, rng)) for a in SKILLS for b in SKILLS if a != b
            ],
        }
        for share in (0.1, 0.2):
            base = {k: v for k, v in TRAINING_MIX.items() if k != "extract"}
            shifted = {**{k: v * (1 - share) / sum(base.values()) for k, v in base.items()}, "extract": share}
            scenarios[f"partial {share:.0%} new skill"] = [
                (draw(pool, base, n, rng), draw(pool, shifted, n, rng)) for _ in range(args.trials)
            ]
        for scenario, cases in scenarios.items():
            for name, test in TESTS.items():
                share_detected, seconds = rate(cases, test, args.alpha)
                results.setdefault(f"n={n}", {}).setdefault(scenario, {})[name] = share_detected
                results[f"n={n}"][scenario][f"{name}_s"] = round(seconds, 3)
                print(
                    f"n={n:4d}  {scenario:24s} {name:17s} p<{args.alpha}: {share_detected:6.1%}  ({len(cases)} cases, {seconds:.2f} s each)",
                    flush=True,
                )
    print(
        json.dumps(
            {"embed_s": round(embed_s, 1), "alpha": args.alpha, "trials": args.trials, "results": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
