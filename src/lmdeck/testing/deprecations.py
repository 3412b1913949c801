"""A pytest plugin: a deprecated API that lmdeck's own code calls fails the test; one a library calls does not.

Python attributes a warning to the frame its ``stacklevel`` names, the caller of the deprecated API.
When that caller is lmdeck's code (``src/lmdeck`` or the tests) the warning is lmdeck's to fix, and the
test that triggered it fails, even when the warning was raised on another thread (the local engine's)::

    lmdeck called a deprecated API:
      FutureWarning: `past_key_values` is deprecated ... Use `cache` instead.
        at src/lmdeck/local/model.py:92 in prefill

Frames that only pass a call on are looked through: PyTorch's ``Module.__call__`` hands ``forward``
the keyword arguments its caller chose, so a deprecated ``forward`` argument is the caller's. A
warning whose caller is a third-party library (its internal use of something it deprecated) is
dropped. The categories are ``DeprecationWarning``, ``PendingDeprecationWarning`` and
``FutureWarning``; ``pyproject.toml`` sets them to ``always`` so that every occurrence reaches this
check rather than the first per place. Enable it with ``pytest_plugins = ["lmdeck.testing.deprecations"]``.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import lmdeck

DEPRECATIONS: tuple[type[Warning], ...] = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)

#: lmdeck's own code: the package, and the tests beside it.
OWN_ROOTS: tuple[Path, ...] = (
    Path(lmdeck.__file__).resolve().parent,
    Path(lmdeck.__file__).resolve().parents[2] / "tests",
)

#: Frames that forward a call with their caller's arguments (file name suffix, function names).
FORWARDERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("torch/nn/modules/module.py", frozenset({"_call_impl", "_wrapped_call_impl"})),
)


def _is_own(filename: str) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return any(path.is_relative_to(root) for root in OWN_ROOTS)


def _forwards(frame: FrameType) -> bool:
    name = frame.f_code.co_filename.replace("\\", "/")
    return any(name.endswith(suffix) and frame.f_code.co_name in functions for suffix, functions in FORWARDERS)


def caller_of(message: warnings.WarningMessage, frame: FrameType | None) -> tuple[str, int, str]:
    """The ``(file, line, function)`` a warning is attributed to, looking through forwarding frames.

    ``frame`` is where the search starts (the innermost frame of the warning's stack).
    """
    while frame is not None and not (frame.f_code.co_filename == message.filename and frame.f_lineno == message.lineno):
        frame = frame.f_back
    if frame is None:  # raised with warn_explicit or from another stack: trust the attribution as given
        return message.filename, message.lineno, "?"
    while frame.f_back is not None and _forwards(frame):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


class DeprecationCheck:
    """Wraps ``warnings._showwarnmsg_impl`` while a test runs and collects lmdeck's deprecations."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self._lock = threading.Lock()

    def _show(self, original: Callable[[warnings.WarningMessage], Any]) -> Callable[[warnings.WarningMessage], Any]:
        def show(message: warnings.WarningMessage) -> Any:
            if not issubclass(message.category, DEPRECATIONS):
                return original(message)
            filename, line, function = caller_of(message, sys._getframe(1))
            if not _is_own(filename):
                return None  # a library's own use of what it deprecates: not lmdeck's to fix
            with self._lock:
                self.found.append(
                    f"  {message.category.__name__}: {message.message}\n    at {filename}:{line} in {function}"
                )
            return original(message)

        return show

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        return (yield from self._checked())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        return (yield from self._checked())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        return (yield from self._checked())

    def _checked(self) -> Generator[None, object, object]:
        module: Any = warnings
        original = module._showwarnmsg_impl
        module._showwarnmsg_impl = self._show(original)
        self.found = []
        try:
            result = yield
        finally:
            module._showwarnmsg_impl = original
        if self.found:
            unique = list(dict.fromkeys(self.found))
            pytest.fail("lmdeck called a deprecated API:\n" + "\n".join(unique), pytrace=False)
        return result


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(DeprecationCheck(), "lmdeck-deprecations")
