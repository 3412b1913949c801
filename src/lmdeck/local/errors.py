"""Why the local engine refuses or ends a request (importable without PyTorch)."""

from __future__ import annotations


class QueueFull(RuntimeError):
    """Every row is busy and the waiting queue is at ``max_queue``."""


class PromptTooLong(ValueError):
    """The prompt leaves no room in the model's context for a single generated token."""


class EngineClosed(RuntimeError):
    """The engine was stopped before the request finished."""


class ModelLoadError(RuntimeError):
    """A local model could not be loaded; the message says what is missing."""


class AdapterError(ValueError):
    """A LoRA adapter cannot be served: its directory is missing or malformed, or it does not fit the model."""
