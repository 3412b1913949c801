"""Train lmdeck's bundled demo model from scratch, on the CPU, in a few minutes.

The model is a small Llama-style causal LM (0.8 M parameters, character
tokens) trained on the synthetic skills of :mod:`lmdeck.local.skills`. Everything
is seeded: the same command on the same machine writes the same checkpoint, and on
another machine one whose held-out accuracy lands within the tolerance stated in
docs/demo-model.md.

    python scripts/train_demo_model.py                        # writes src/lmdeck/local/demo_model/
    python scripts/train_demo_model.py --steps 20 --out /tmp/m  # a quick end-to-end check

The checkpoint directory holds ``model.safetensors``, ``config.json``,
``tokenizer.json``, ``training.json`` (how it was made) and ``eval.json`` (held-out
accuracy per skill, written by :mod:`lmdeck.local.demo_eval`).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmdeck.local.chat_template import END, PAD, ChatTemplate
from lmdeck.local.demo_eval import evaluate
from lmdeck.local.skills import Example, training_examples
from lmdeck.local.vocab import build_tokenizer

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "lmdeck" / "local" / "demo_model"
IGNORE = -100


def model_config(args: argparse.Namespace, vocab_size: int, pad_id: int, end_id: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=512,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        bos_token_id=end_id,
        eos_token_id=end_id,
    )


class Batches:
    """Packed training rows: whole examples laid end to end, each attending only to itself.

    Every row holds several examples with their own positions (from 0) and a block-diagonal
    causal mask, so training sees exactly what inference sees while wasting almost nothing on
    padding, and every batch mixes all the skills.
    """

    def __init__(self, seed: int, rows: int, width: int) -> None:
        self.draw = training_examples(seed)
        self.tokenizer = build_tokenizer()
        self.template = ChatTemplate()
        self.rows, self.width = rows, width
        self.pad_id = self.tokenizer.token_to_id(PAD)
        self.carry: tuple[list[int], list[int]] | None = None

    def _encode(self, example: Example) -> tuple[list[int], list[int]]:
        prompt, answer = self.template.training_text(example.prompt, example.answer)
        p = self.tokenizer.encode(prompt).ids
        a = self.tokenizer.encode(answer).ids
        return p + a, [IGNORE] * len(p) + a

    def _next_example(self) -> tuple[list[int], list[int]]:
        if self.carry is not None:
            example, self.carry = self.carry, None
            return example
        ids, labels = self._encode(self.draw())
        return ids[: self.width], labels[: self.width]

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = torch.full((self.rows, self.width), self.pad_id, dtype=torch.long)
        labels = torch.full((self.rows, self.width), IGNORE, dtype=torch.long)
        positions = torch.zeros((self.rows, self.width), dtype=torch.long)
        segment = torch.full((self.rows, self.width), -1, dtype=torch.long)
        for row in range(self.rows):
            used, index = 0, 0
            while True:
                x, y = self._next_example()
                if used + len(x) > self.width:
                    self.carry = (x, y)
                    break
                ids[row, used : used + len(x)] = torch.tensor(x)
                labels[row, used : used + len(y)] = torch.tensor(y)
                positions[row, used : used + len(x)] = torch.arange(len(x))
                segment[row, used : used + len(x)] = index
                used, index = used + len(x), index + 1
        columns = torch.arange(self.width)
        causal = columns[None, :] <= columns[:, None]
        same = segment[:, :, None] == segment[:, None, :]
        allowed = (same & causal[None]) | torch.eye(self.width, dtype=torch.bool)[None]
        mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
        return ids, labels, positions, mask[:, None]


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    config = model_config(args, tokenizer.get_vocab_size(), tokenizer.token_to_id(PAD), tokenizer.token_to_id(END))
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters; {args.steps} steps of {args.batch_size}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    batches = Batches(args.seed, args.batch_size, args.width)
    model.train()
    started = time.perf_counter()
    losses: list[float] = []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        ids, labels, positions, mask = batches.next()
        loss = model(input_ids=ids, position_ids=positions, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            recent = sum(losses[-args.log_every :]) / len(losses[-args.log_every :])
            elapsed = time.perf_counter() - started
            print(f"step {step + 1:5d}  loss {recent:.4f}  {elapsed:6.1f}s", flush=True)
    seconds = time.perf_counter() - started
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    meta = {
        "command": "python scripts/train_demo_model.py " + " ".join(args.argv),
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "width": args.width,
        "peak_lr": args.lr,
        "warmup": args.warmup,
        "parameters": params,
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "train_seconds": round(seconds, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
    }
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="checkpoint directory")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=32, help="packed rows per step")
    parser.add_argument("--width", type=int, default=128, help="tokens per packed row")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--eval-size", type=int, default=200, help="held-out examples per skill (0: skip)")
    import sys

    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    args.argv = raw
    meta = train(args)
    print(json.dumps(meta, indent=2), flush=True)
    if args.eval_size:
        report = evaluate(Path(args.out), size=args.eval_size)
        (Path(args.out) / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["accuracy"], indent=2), flush=True)


if __name__ == "__main__":
    main()
