from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lmdeck.finetune.prep import BaseModelError, BaseModelInfo, load_base_model
from lmdeck.local.demo_model import DEMO_MODEL_DIR


def test_the_demo_model_and_a_directory_of_ones_own(tmp_path: Path, demo_base: BaseModelInfo) -> None:
    assert demo_base.name == "demo" and demo_base.directory == DEMO_MODEL_DIR
    text = "<|user|>hi<|end|><|assistant|>hello<|end|>"
    assert demo_base.count_tokens([text, ""]) == [len("hi") + len("hello") + 4, 0]
    mine = tmp_path / "models" / "mine"
    mine.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(DEMO_MODEL_DIR / name, mine / name)
    found = load_base_model("mine", model_dir=tmp_path / "models")
    assert found.directory == mine and found.count_tokens([text]) == demo_base.count_tokens([text])


def test_what_cannot_be_prepared_for(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="no local model 'nope'"):
        load_base_model("nope", model_dir=tmp_path)
    with pytest.raises(BaseModelError, match="embedding model"):
        load_base_model("all-minilm-l6-v2")
    with pytest.raises(BaseModelError, match=r"tokenizer\.json is missing"):
        BaseModelInfo.from_directory("bare", tmp_path)
