"""Job runners are found by name, the built-ins through the same entry points a plugin uses."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from lmdeck.finetune.runners.local import LocalRunner
from lmdeck.finetune.runners.registry import ENTRY_POINT_GROUP, RunnerRegistry
from lmdeck.plugins import call_hooks
from lmdeck.settings import ConfigError, FineTuningSettings, Settings

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def declared_hooks() -> list[EntryPoint]:
    table = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in table.items()]


def test_the_built_in_runners_register_through_the_entry_point_group() -> None:
    import logging

    registry = call_hooks(
        declared_hooks(), RunnerRegistry(), remedy=str, kind="job runner", log=logging.getLogger("test")
    )

    assert registry.names() == ["local", "ray"]
    assert isinstance(registry.create("local", FineTuningSettings()), LocalRunner)
    ray_runner = registry.create("ray", FineTuningSettings(ray_address="http://127.0.0.1:1"))
    assert ray_runner.name == "ray"


def test_an_unknown_runner_names_the_known_ones_and_the_fix() -> None:
    registry = RunnerRegistry()
    registry.add("local", LocalRunner)
    with pytest.raises(ConfigError, match=r"unknown job runner 'slurm' \(known: local\); install the plugin"):
        registry.create("slurm", FineTuningSettings())
    registry.unavailable["ray"] = "No module named 'ray'; install lmdeck[ray]"
    with pytest.raises(ConfigError, match=r"job runner 'ray' could not be loaded: .*lmdeck\[ray\]"):
        registry.create("ray", FineTuningSettings())


def test_the_runner_and_ray_address_are_settings() -> None:
    settings = Settings.model_validate({"fine_tuning": {"runner": "ray", "ray_address": "http://head:8265"}})
    assert settings.fine_tuning.runner == "ray" and settings.fine_tuning.ray_address == "http://head:8265"
    assert Settings().fine_tuning.runner == "local"
