"""lmdeck: the operations deck between LLM applications and the models they call."""

__version__ = "0.1.0"

__all__ = ["__version__"]
