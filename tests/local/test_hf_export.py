"""The demo checkpoint exported for transformers-based servers renders and tokenizes as lmdeck's engine does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from lmdeck.local.chat_template import END, ChatTemplate
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.hf_export import CHECKPOINT_FILES, export_demo_model, main

CONVERSATIONS = [
    [{"role": "user", "content": "What is 12+7?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reverse: abc"},
        {"role": "assistant", "content": "cba"},
        {"role": "user", "content": "Capital of Peru?"},
    ],
    [{"role": "developer", "content": "d"}, {"role": "tool", "content": "t"}],
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_demo_model(tmp_path_factory.mktemp("export") / "demo")


def test_the_copy_holds_the_checkpoint_and_a_tokenizer_config(exported: Path) -> None:
    assert {p.name for p in exported.iterdir()} == {*CHECKPOINT_FILES, "tokenizer_config.json"}
    for name in CHECKPOINT_FILES:
        assert (exported / name).read_bytes() == (DEMO_MODEL_DIR / name).read_bytes()
    assert json.loads((exported / "tokenizer_config.json").read_text())["eos_token"] == END


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_transformers_renders_and_tokenizes_as_the_engine_does(exported: Path, messages: list[dict[str, str]]) -> None:
    hf = AutoTokenizer.from_pretrained(str(exported), local_files_only=True)
    rendered = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == ChatTemplate().render(messages)
    engine = Tokenizer.from_file(str(DEMO_MODEL_DIR / "tokenizer.json"))
    assert hf(rendered)["input_ids"] == engine.encode(rendered).ids
    assert hf.eos_token_id == engine.token_to_id(END)


def test_the_command_names_its_usage_and_writes_the_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
    assert main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tokenizer_config.json").is_file()


def test_an_incomplete_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        export_demo_model(tmp_path / "out", source=tmp_path)
