"""Registry specs: models and prompts share one declared shape and differ in their pointers' name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmdeck.protocol.registry import ModelSpec, PromptSpec, VersionedSpec


def test_pointers_read_aliases_or_labels() -> None:
    model = ModelSpec.model_validate(
        {"name": "bot", "versions": [{"provider": "openai", "model": "m"}], "aliases": {"production": 1}}
    )
    prompt = PromptSpec.model_validate({"name": "greet", "versions": [{"text": "hi"}], "labels": {"staging": 1}})
    assert isinstance(model, VersionedSpec) and isinstance(prompt, VersionedSpec)
    assert model.pointers == {"production": 1} and prompt.pointers == {"staging": 1}
    assert list(model.model_dump()) == ["name", "description", "versions", "aliases"]
    assert list(prompt.model_dump()) == ["name", "description", "versions", "labels"]


def test_each_kind_refuses_the_other_kinds_words_and_versions() -> None:
    with pytest.raises(ValidationError, match="labels"):
        ModelSpec.model_validate({"name": "bot", "labels": {"production": 1}})
    with pytest.raises(ValidationError, match="aliases"):
        PromptSpec.model_validate({"name": "greet", "aliases": {"production": 1}})
    with pytest.raises(ValidationError, match="provider"):
        PromptSpec.model_validate({"name": "greet", "versions": [{"provider": "openai", "model": "m"}]})
