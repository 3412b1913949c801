"""Local model names: built-ins first, then directories under ``local.model_dir``, never outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.local.catalog import ModelCatalog, UnknownLocalModel


def checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_a_name_is_a_directory_under_the_model_dir_and_never_leads_out(tmp_path: Path) -> None:
    models = tmp_path / "models"
    checkpoint(models / "mine")
    checkpoint(models / "org" / "nested")
    outside = checkpoint(tmp_path / "outside")
    catalog = ModelCatalog(models)
    assert catalog.find("demo").task == "generate"
    assert catalog.find("mine").path == models / "mine"
    assert catalog.find("org/nested").path == models / "org" / "nested"
    for name in (str(outside), "../outside", "org/../../outside"):
        with pytest.raises(UnknownLocalModel, match="no local model"):
            catalog.find(name)
