"""Fixtures for the local engine: a tiny random model (fast, never stops by itself) and the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.loading import load_causal_lm
from lmdeck.local.model import LocalCausalLM
from lmdeck.local.random_model import write_random_model


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    # The models here are tiny: a second intra-op thread only adds contention on a shared machine.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and the demo tokenizer: it always runs to max_tokens."""
    return write_random_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir: Path) -> LocalCausalLM:
    return load_causal_lm(tiny_model_dir, name="tiny", device=torch.device("cpu"))


@pytest.fixture(scope="session")
def demo_lm() -> LocalCausalLM:
    return load_causal_lm(DEMO_MODEL_DIR, name="demo", device=torch.device("cpu"))
