"""The deprecation check: lmdeck's own calls of deprecated APIs are found, libraries' internal ones are not."""

from __future__ import annotations

import importlib.util
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch

from lmdeck.testing.deprecations import DeprecationCheck

LIBRARY = """
import warnings

import torch


def old_api():
    warnings.warn("old_api is deprecated; use new_api", DeprecationWarning, stacklevel=2)


def uses_old_api_inside():
    old_api()  # the library's own call: attributed here, inside the library


class Layer(torch.nn.Module):
    def forward(self, x, past=None):
        if past is not None:
            # Like transformers' deprecate_kwarg: attributed to the frame that called forward (Module.__call__).
            warnings.warn("`past` is deprecated; use `cache`", FutureWarning, stacklevel=2)
        return x
"""


@pytest.fixture
def library(tmp_path: Path) -> ModuleType:
    """A third-party module: it lives outside lmdeck's source and tests."""
    path = tmp_path / "site-packages" / "somelib.py"
    path.parent.mkdir()
    path.write_text(LIBRARY)
    spec = importlib.util.spec_from_file_location("somelib", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checked(calls: object) -> list[str]:
    """What the check finds while ``calls`` runs (as pytest runs a test, warnings recorded)."""
    assert callable(calls)
    check = DeprecationCheck()
    module = sys.modules["warnings"]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        original = module._showwarnmsg_impl  # type: ignore[attr-defined]
        module._showwarnmsg_impl = check._show(original)  # type: ignore[attr-defined]
        try:
            calls()
        finally:
            module._showwarnmsg_impl = original  # type: ignore[attr-defined]
    return check.found


def test_our_call_of_a_deprecated_api_is_found(library: ModuleType) -> None:
    [found] = checked(library.old_api)
    assert "DeprecationWarning: old_api is deprecated" in found
    assert __file__ in found


def test_a_librarys_internal_call_is_not_ours(library: ModuleType) -> None:
    assert checked(library.uses_old_api_inside) == []


def test_a_deprecated_forward_argument_is_the_callers_through_module_call(library: ModuleType) -> None:
    layer = library.Layer()
    [found] = checked(lambda: layer(torch.zeros(1), past=1))
    assert "FutureWarning: `past` is deprecated" in found and __file__ in found
    assert checked(lambda: layer(torch.zeros(1))) == []


def test_warnings_on_another_thread_are_found(library: ModuleType) -> None:
    def our_code() -> None:
        library.old_api()

    def in_a_thread() -> None:
        worker = threading.Thread(target=our_code)
        worker.start()
        worker.join()

    assert len(checked(in_a_thread)) == 1
