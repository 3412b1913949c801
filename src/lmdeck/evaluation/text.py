"""Text normalisation shared by the reference-based evaluators."""

from __future__ import annotations

import json
import re
from typing import Any

_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def normalize(text: str, *, case_sensitive: bool = True, collapse_space: bool = True) -> str:
    """Strip, optionally fold case and collapse runs of whitespace."""
    text = text.strip()
    if collapse_space:
        text = _SPACE.sub(" ", text)
    return text if case_sensitive else text.casefold()


def as_text(value: Any) -> str:
    """A reference value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, dict) and set(value) == {"output"}:
        return as_text(value["output"])
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def references(expected: Any) -> list[str]:
    """Acceptable answers: a list means any of them, anything else is one answer."""
    if expected is None:
        return []
    if isinstance(expected, list) and all(isinstance(x, str | int | float) for x in expected):
        return [as_text(x) for x in expected]
    return [as_text(expected)]


def numbers(text: str) -> list[float]:
    """Every number in a text, thousands separators dropped (``1,234.5`` → 1234.5)."""
    found = []
    for match in _NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def input_text(value: Any) -> str:
    """A dataset input as prompt text: a string, the last user message, or compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        return str(value[-1]["content"])
    if isinstance(value, dict) and len(value) == 1:
        return as_text(next(iter(value.values())))
    return as_text(value)
