"""lmdeck's version (the one in ``pyproject.toml``), importable without the SDK the package root offers."""

__version__ = "0.1.0"
