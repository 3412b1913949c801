"""Held-out accuracy of the demo model, per skill.

    python -m lmdeck.local.demo_eval                     # the bundled checkpoint, 200 examples per skill
    python -m lmdeck.local.demo_eval --quantize int8     # the same through int8 dynamic quantization
    python -m lmdeck.local.demo_eval --reference         # transformers' generate() instead of the engine
    python -m lmdeck.local.demo_eval --model-dir /tmp/m --size 50

Answers are generated greedily (temperature 0) from the chat template by lmdeck's own
engine (all prompts in flight at once), and checked by each skill's own checker (exact
match; JSON equality for ``extract``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lmdeck.local.chat_template import END, PAD, ChatTemplate
from lmdeck.local.skills import SKILLS, Example, heldout_set

GenerateFn = Callable[[Sequence[str], int], list[str]]


def hf_generate(model_dir: Path, batch_size: int = 64) -> GenerateFn:
    """Greedy generation with ``transformers``' own ``generate`` (a reference independent of the engine)."""
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pad_id, end_id = tokenizer.token_to_id(PAD), tokenizer.token_to_id(END)
    if pad_id is None or end_id is None:
        raise ValueError(f"{model_dir / 'tokenizer.json'} lacks {PAD} or {END}: it is not a demo-model tokenizer")

    def generate(prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        outputs: list[str] = []
        for start in range(0, len(prompts), batch_size):
            encoded = [tokenizer.encode(p).ids for p in prompts[start : start + batch_size]]
            width = max(len(ids) for ids in encoded)
            ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(encoded), width), dtype=torch.long)
            for i, row in enumerate(encoded):  # left padding: every prompt ends where generation starts
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad_id,
                    eos_token_id=end_id,
                )
            outputs += [tokenizer.decode(row[width:].tolist(), skip_special_tokens=True) for row in out]
        return outputs

    return generate


def engine_generate(model_dir: Path, quantize: str = "none", batch_size: int = 64) -> GenerateFn:
    """Greedy generation through :class:`LocalEngine`, every prompt submitted at once."""
    from lmdeck.local.engine import LocalEngine
    from lmdeck.local.loading import load_causal_lm
    from lmdeck.local.sampling import SamplingParams

    lm = load_causal_lm(model_dir, name=model_dir.name, device=torch.device("cpu"), quantize=quantize)

    async def run(prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        engine = LocalEngine(lm, max_batch_size=batch_size, max_queue=len(prompts))
        try:
            params = SamplingParams(max_tokens=max_new_tokens, temperature=0)
            handles = [engine.submit(lm.encode(p), params) for p in prompts]
            return [(await h.text())[0] for h in handles]
        finally:
            engine.close()

    def generate(prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        return asyncio.run(run(prompts, max_new_tokens))

    return generate


def evaluate(
    model_dir: Path, size: int = 200, generate: GenerateFn | None = None, skills: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy per skill on ``size`` held-out examples each, with a few failures to look at."""
    generate = generate or engine_generate(model_dir)
    template = ChatTemplate()
    accuracy: dict[str, float] = {}
    counts: dict[str, int] = {}
    failures: dict[str, list[dict[str, str]]] = {}
    started = time.perf_counter()
    for name in skills or list(SKILLS):
        examples: list[Example] = heldout_set(name, size)
        prompts = [template.render([{"role": "user", "content": e.prompt}]) for e in examples]
        longest = max(len(e.answer) for e in examples)
        answers = generate(prompts, longest + 8)
        right = [SKILLS[name].check(e, a) for e, a in zip(examples, answers, strict=True)]
        accuracy[name] = round(sum(right) / len(right), 4)
        counts[name] = len(right)
        failures[name] = [
            {"prompt": e.prompt, "expected": e.answer, "got": a}
            for e, a, ok in zip(examples, answers, right, strict=True)
            if not ok
        ][:3]
    return {
        "accuracy": accuracy,
        "examples": counts,
        "mean": round(sum(accuracy.values()) / len(accuracy), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> None:
    from lmdeck.local.demo_model import DEMO_MODEL_DIR

    parser = argparse.ArgumentParser(description="held-out accuracy of the demo model, per skill")
    parser.add_argument("--model-dir", type=Path, default=DEMO_MODEL_DIR)
    parser.add_argument("--size", type=int, default=200, help="held-out examples per skill")
    parser.add_argument("--skill", action="append", choices=sorted(SKILLS), help="only these skills")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none")
    parser.add_argument("--reference", action="store_true", help="generate with transformers instead of the engine")
    args = parser.parse_args(argv)
    generate = hf_generate(args.model_dir) if args.reference else engine_generate(args.model_dir, args.quantize)
    report = evaluate(args.model_dir, args.size, generate=generate, skills=args.skill)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
