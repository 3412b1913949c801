"""A small model with random weights and the demo tokenizer, for smoke tests of the engine.

It loads and serves like any local model but answers gibberish; its end token is
silenced, so every generation runs to ``max_tokens``, which makes it the model to use
when a test needs a request to keep its batch row busy::

    write_random_model(tmp / "tiny")
    settings = Settings.model_validate({"local": {"model_dir": str(tmp)}, "routes": [...model: tiny...]})
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmdeck.local.chat_template import END, PAD
from lmdeck.local.vocab import build_tokenizer


def write_random_model(out: Path, *, context: int = 256, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write a random Llama (``hidden`` wide, ``layers`` deep) with the demo tokenizer into ``out``."""
    tokenizer = build_tokenizer()
    end = tokenizer.token_to_id(END)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        initializer_range=0.3,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.token_to_id(PAD),
        eos_token_id=end,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # With tied embeddings, a zero row gives the end token a logit of 0 while the others spread far wider.
        model.model.embed_tokens.weight[end] = 0.0
        model.lm_head.weight = model.model.embed_tokens.weight
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    return out
