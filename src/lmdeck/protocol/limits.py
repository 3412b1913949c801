"""What any request may contain, checked where it enters: integers, numbers and JSON shapes.

Every integer a client sends fits in 64 bits (the store's INTEGER and every upstream's
``int64``), every number is finite, JSON nests at most :data:`MAX_JSON_DEPTH` deep, and
integers written as text (query parameters, version references) use ASCII digits only::

    parse_int("12", "limit", lo=1, hi=1000)        # 12
    parse_int("١٢", "limit")                        # raises InputError: Arabic-Indic digits are refused
    check_json({"metadata": {"a": 2**64}})          # raises InputError naming metadata.a

Request schemas use the bounded types below (``Int64``, ``Count``, ``TokenCount``...) so
that the OpenAPI document states the same bounds the server enforces.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field

from lmdeck.protocol.errors import APIError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Deepest JSON nesting accepted in a request body (a body object holding a list is depth 2).
MAX_JSON_DEPTH = 64

#: Largest count a list or page parameter may ask for.
MAX_COUNT = 1_000_000
#: Largest token count a request may name (max_tokens, budgets of tokens per minute...).
MAX_TOKENS = 2**31 - 1
#: Largest rate a limit may name, per minute (requests or tokens).
MAX_PER_MINUTE = 10**12
#: Largest amount of money, in US dollars, a budget or price may name.
MAX_USD = 1e12
#: Latest time (Unix seconds) a client may name: the year 9999, the end of ISO 8601's range.
MAX_EPOCH_SECONDS = 253402300799.0
#: Longest duration in seconds (100 years) a client may ask for.
MAX_SECONDS = 100 * 365.25 * 86400

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
#: A non-negative 64-bit integer: offsets, sequence numbers.
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
#: A number of things: at least 1, at most :data:`MAX_COUNT`.
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
#: A number of tokens: at least 1, at most :data:`MAX_TOKENS`.
TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
#: A version number of a registered model, prompt or dataset.
VersionNumber = Annotated[int, Field(ge=1, le=INT64_MAX)]
#: An amount in US dollars.
Usd = Annotated[float, Field(ge=0, le=MAX_USD, allow_inf_nan=False)]
#: A moment as Unix seconds.
EpochSeconds = Annotated[float, Field(ge=0, le=MAX_EPOCH_SECONDS, allow_inf_nan=False)]
#: A duration in seconds.
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]

_ASCII_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_ASCII_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


class InputError(APIError, ValueError):
    """A value a client sent is out of what lmdeck accepts: a 400 (or a 413, too large to take at all)
    naming ``param``. Raised anywhere below a route it reaches the client as it is; inside a pydantic
    validator it is a ``ValueError`` like any other.
    """

    def __init__(self, param: str | None, message: str, status: int = 400, code: str = "invalid_value") -> None:
        super().__init__(status, f"{param}: {message}" if param else message, param=param, code=code)


def parse_int(text: str, param: str, *, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    """An integer written in ASCII digits (an optional sign, no spaces or ``_``), within ``lo..hi``.

    Raises :class:`InputError` naming ``param`` otherwise (``int()`` alone would take
    ``"١٢"``, ``" 12 "`` and ``"1_2"``, and any size).
    """
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not _ASCII_INT.fullmatch(value):
        raise InputError(param, f"expected an integer in ASCII digits, got {text!r}")
    # Past 21 characters it is out of any 64-bit range; int() of a huge string costs quadratic time.
    number = int(value) if len(value) <= 21 else None
    if number is None or not lo <= number <= hi:
        raise InputError(param, f"must be an integer from {lo} to {hi}, got {value[:30]}")
    return number


def is_ascii_int(text: str) -> bool:
    """Whether ``text`` is an integer in ASCII digits (what :func:`parse_int` would read)."""
    return bool(_ASCII_INT.fullmatch(text))


def parse_number(text: str, param: str) -> float:
    """A finite number written in ASCII (``12``, ``-1.5``, ``2e3``); :class:`InputError` otherwise."""
    value = text.strip()
    if not _ASCII_NUMBER.fullmatch(value):
        raise InputError(param, f"expected a number in ASCII digits, got {text!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(param, f"must be a finite number, got {text!r}")
    return number


def _where(path: list[str | int]) -> str | None:
    parts = [str(p) for p in path]
    if len(parts) > 8:
        parts = [*parts[:4], "...", *parts[-2:]]
    return ".".join(parts) or None


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH, prefix: str | None = None) -> None:
    """Refuse what parsed JSON may hold but no part of lmdeck should take.

    Raises :class:`InputError` (400) for an integer outside 64 bits, a number that is not
    finite, or nesting deeper than ``max_depth``; the error names the path of the value,
    e.g. ``metadata.tags.3``. Iterative, so depth costs no recursion. It runs on every
    request body, so the common case (nothing wrong) keeps no paths: they are worked
    out only once a fault is known to be there.
    """
    if _has_fault(value, max_depth):
        _raise_fault(value, max_depth, [prefix] if prefix else [])


def _has_fault(value: Any, max_depth: int) -> bool:
    # Parsed JSON holds exact types (bool is not int here), so type() checks suffice and are fast.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return True
        elif kind is float:
            if not math.isfinite(item):
                return True
        elif kind is dict or kind is list:
            if depth > max_depth:
                return True
            deeper = depth + 1
            for child in item.values() if kind is dict else item:
                child_kind = type(child)
                if child_kind is dict or child_kind is list or child_kind is int or child_kind is float:
                    stack.append((child, deeper))
    return False


def _raise_fault(item: Any, max_depth: int, path: list[str | int], depth: int = 1) -> None:
    """Find the fault :func:`_has_fault` saw and raise it with its path (recursion is bounded by max_depth)."""
    kind = type(item)
    if kind is int and not INT64_MIN <= item <= INT64_MAX:
        raise InputError(_where(path), "integers must fit in 64 bits (-2^63 to 2^63-1)")
    if kind is float and not math.isfinite(item):
        raise InputError(_where(path), "numbers must be finite")
    if kind is dict or kind is list:
        if depth > max_depth:
            raise InputError(_where(path), f"JSON nests deeper than {max_depth} levels")
        for key, child in item.items() if kind is dict else enumerate(item):
            _raise_fault(child, max_depth, [*path, key], depth + 1)
