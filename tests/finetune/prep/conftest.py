"""Fixtures of the data preparation tests: the bundled demo model's tokenizer and template."""

from __future__ import annotations

import pytest

from lmdeck.finetune.prep import BaseModelInfo, load_base_model


@pytest.fixture(scope="session")
def demo_base() -> BaseModelInfo:
    return load_base_model("demo")
