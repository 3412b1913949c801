"""Data files become token ids with the loss on the completion only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmdeck.finetune.training.data import (
    IGNORE_INDEX,
    CompletionCollator,
    DataFileError,
    TokenizedExample,
    read_examples,
    tokenize,
    tokenize_file,
)
from lmdeck.finetune.training.lora import load_tokenizer
from lmdeck.local.demo_model import DEMO_MODEL_DIR


def test_the_loss_covers_the_completion_and_its_end_token_only() -> None:
    tokenizer = load_tokenizer(DEMO_MODEL_DIR)
    example = tokenize("<|user|>Reverse: ab<|end|><|assistant|>", "ba<|end|>", tokenizer, max_length=512)

    end = tokenizer.convert_tokens_to_ids("<|end|>")
    prompt_length = len("Reverse: ab") + 3  # one token per character, one per special token
    assert len(example.input_ids) == prompt_length + 3
    assert example.labels[:prompt_length] == [IGNORE_INDEX] * prompt_length
    assert example.labels[prompt_length:] == example.input_ids[prompt_length:]
    assert example.input_ids[-1] == end


def test_long_examples_are_truncated_and_those_left_without_completion_dropped(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(DEMO_MODEL_DIR)
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "abcdefgh", "completion": "xy"}\n\n{"prompt": "ab", "completion": "xy"}\n')

    examples = tokenize_file(data, tokenizer, max_length=8)

    assert [len(e.input_ids) for e in examples] == [4]


@pytest.mark.parametrize(
    ("line", "complaint"),
    [("[1, 2]", "expected an object"), ('{"prompt": "a"}', "must be strings"), ("{", "not JSON")],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, complaint: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n' + line + "\n")
    with pytest.raises(DataFileError, match=f"d.jsonl:2: .*{complaint}"):
        read_examples(data)


def test_the_collator_pads_right_and_masks_the_padding() -> None:
    batch = CompletionCollator(pad_id=0)(
        [TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7]), TokenizedExample([8, 9], [IGNORE_INDEX, 9])]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]]
    assert batch["input_ids"].dtype == torch.long
