"""Prompt optimization on the demo model: does a bootstrap few-shot search help a skill it fails at?

    python bench/prompt_optimize.py                           # count skill, 80 rows, 6 candidates of 3 demos
    python bench/prompt_optimize.py --skill capital --rows 60 --demos 2 --candidates 4

Starts a real ``lmdeck serve`` (the bundled ``demo`` route), registers a prompt that passes the
question through (``{{ input }}``), a dataset of ``--rows`` examples of one skill (the model's
held-out split, so it never trained on them) and runs ``lmdeck prompts optimize`` with ``numeric``
(the last number, as the skill's checker reads it) or ``exact``. Prints one JSON document: the
original's score on the held-out half, each candidate's, the paired test of the best against the
original, the version registered (if any) and the wall time. The same-run baseline is the original.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from lmdeck.local.skills import heldout_set
from lmdeck.sdk import Client
from lmdeck.testing.servers import gateway_process

CHECKERS = {"count": "numeric", "add": "numeric", "sub": "numeric"}


def reference(answer: str, evaluator: str) -> str:
    return re.findall(r"-?\d+", answer)[-1] if evaluator == "numeric" else answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skill", default="count")
    parser.add_argument("--rows", type=int, default=80)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--demos", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    evaluator = CHECKERS.get(args.skill, "exact")
    examples = heldout_set(args.skill, args.rows)
    # `numeric` wants one number as the reference: the worked answer's last one, which the skill checks.
    rows = [{"input": {"input": e.prompt}, "expected": reference(e.answer, evaluator)} for e in examples]
    with (
        tempfile.TemporaryDirectory() as tmp,
        gateway_process({}, data_dir=Path(tmp), timeout=120) as gw,
        Client(gw.url, gw.admin_key, timeout=600) as client,
    ):
        client.post("/api/registry/datasets/skill/versions", json={"rows": rows})
        client.post("/api/registry/prompts", json={"name": "asker"})
        spec = {"messages": [{"role": "user", "content": "{{ input }}"}], "variables": {"input": "string"}}
        client.post("/api/registry/prompts/asker/versions", json=spec)
        started_at = time.perf_counter()
        started = client.prompts.optimize(
            "asker",
            version=1,
            dataset="skill@1",
            evaluators=[evaluator],
            route="demo",
            candidates=args.candidates,
            demos=args.demos,
            seed=args.seed,
            max_tokens=args.max_tokens,
            concurrency=16,
        )
        record = client.prompts.wait_optimization("asker", started["id"], poll=1.0)
        seconds = time.perf_counter() - started_at
    result = record.get("result") or {}
    report = {
        "skill": args.skill,
        "evaluator": evaluator,
        "rows": args.rows,
        "status": record["status"],
        "error": record.get("error"),
        "seconds": round(seconds, 1),
        "heldout_rows": result.get("heldout_rows"),
        "demo_pool": result.get("demo_pool"),
        "original": (result.get("baseline") or {}).get("mean"),
        "candidates": [
            {
                "candidate": c["candidate"],
                "mean": c["mean"],
                "instruction": c["instruction"]["source"],
                "demos": [d["source"] for d in c["demos"]],
            }
            for c in result.get("candidates", [])
        ],
        "comparison": (result.get("comparison") or {}).get("evaluators"),
        "registered": result.get("registered"),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
