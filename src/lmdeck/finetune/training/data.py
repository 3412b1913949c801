"""Training examples as token ids: prompt + completion, with the loss on the completion only.

Each line of a data file is ``{"prompt": str, "completion": str, ...}``; the prompt is already rendered
through the base model's chat template and the completion ends with its end token, so the text is
tokenized as it stands (no special tokens added)::

    examples = tokenize_file(Path("train.jsonl"), tokenizer, max_length=512)
    batch = CompletionCollator(pad_id=0)(examples[:4])   # input_ids, attention_mask, labels: [4, width]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

#: The label that makes a position count for nothing in the loss (PyTorch's cross-entropy default).
IGNORE_INDEX = -100


class TextTokenizer(Protocol):
    """What is needed of a ``transformers`` tokenizer: ``tokenizer(text, add_special_tokens=False)``."""

    def __call__(self, text: str, *, add_special_tokens: bool = ...) -> Any: ...


@dataclass(frozen=True)
class TokenizedExample:
    """One example's ``input_ids`` (prompt then completion) and ``labels`` (IGNORE_INDEX over the prompt)."""

    input_ids: list[int]
    labels: list[int]


class DataFileError(ValueError):
    """A data file line that is not ``{"prompt": str, "completion": str}``; names the file and line."""


def read_examples(path: Path) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of a JSON-lines file; blank lines are skipped.

    Raises ``FileNotFoundError`` or ``DataFileError`` (with the file and line number).
    """
    pairs: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataFileError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}:{number}: expected an object with prompt and completion")
            prompt, completion = row.get("prompt"), row.get("completion")
            if not isinstance(prompt, str) or not isinstance(completion, str) or not completion:
                raise DataFileError(f"{path}:{number}: prompt and completion must be strings (completion non-empty)")
            pairs.append((prompt, completion))
    return pairs


def tokenize(prompt: str, completion: str, tokenizer: TextTokenizer, max_length: int) -> TokenizedExample:
    """Token ids of ``prompt + completion``, truncated to ``max_length``; labels only on the completion."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + completion_ids)[:max_length]
    return TokenizedExample(ids, labels)


def tokenize_file(path: Path, tokenizer: TextTokenizer, max_length: int) -> list[TokenizedExample]:
    """Every example of a data file, tokenized; those left with no completion token after truncation dropped."""
    examples = [tokenize(p, c, tokenizer, max_length) for p, c in read_examples(path)]
    return [e for e in examples if any(label != IGNORE_INDEX for label in e.labels)]


class ExampleDataset(torch.utils.data.Dataset[TokenizedExample]):
    """A list of tokenized examples as a map-style dataset (what ``Trainer`` samples from)."""

    def __init__(self, examples: Sequence[TokenizedExample]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> TokenizedExample:
        return self.examples[index]


@dataclass(frozen=True)
class CompletionCollator:
    """Right-pads a list of examples into tensors: ``input_ids`` and ``labels`` [batch, width] and the mask."""

    pad_id: int

    def __call__(self, batch: Sequence[TokenizedExample]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
