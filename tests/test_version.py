"""The version lmdeck reports is the one it is packaged as."""

import tomllib
from pathlib import Path

import lmdeck
from lmdeck.version import __version__


def test_the_reported_version_is_pyprojects() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"] == lmdeck.__version__
