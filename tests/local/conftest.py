"""Fixtures for the local engine: a tiny random model (fast, never stops by itself) and the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmdeck.local.chat_template import END, PAD
from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.loading import load_causal_lm
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.vocab import build_tokenizer


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    # The models here are tiny: a second intra-op thread only adds contention on a shared machine.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and the demo tokenizer; its EOS is never likely, so it runs to max_tokens."""
    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        initializer_range=0.3,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.token_to_id(PAD),
        eos_token_id=tokenizer.token_to_id(END),
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # never choose the end token, so generations last exactly max_tokens
        model.model.embed_tokens.weight[tokenizer.token_to_id(END)] = 0.0
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir: Path) -> LocalCausalLM:
    return load_causal_lm(tiny_model_dir, name="tiny", device=torch.device("cpu"))


@pytest.fixture(scope="session")
def demo_lm() -> LocalCausalLM:
    return load_causal_lm(DEMO_MODEL_DIR, name="demo", device=torch.device("cpu"))
