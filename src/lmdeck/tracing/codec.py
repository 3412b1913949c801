"""One trace record as one line of JSON: the spool's on-disk format.

    line = encode(record)            # b'{"id": ...}\\n'
    same = decode(line)

A record always encodes: values JSON cannot hold (objects, non-string keys) are
written as their ``str()``, so a trace is never lost to an odd metadata value.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from lmdeck.protocol.traces import TraceRecord, upgraded

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _fallback(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def encode(record: TraceRecord) -> bytes:
    try:
        return orjson.dumps(record, default=_fallback, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits or cyclic values: a slower path that stringifies what orjson refuses.
        import json

        text = json.dumps(record.to_dict(), default=str, ensure_ascii=False)
        return orjson.dumps(orjson.loads(text), option=_OPTIONS)


class UnreadableLine(ValueError):
    """A spool line that is not a trace record (a torn write or a damaged file)."""


_FIELDS = frozenset(f.name for f in fields(TraceRecord))


def decode(line: bytes) -> TraceRecord:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise UnreadableLine(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise UnreadableLine("not a trace record (no string 'id')")
    data = upgraded(data)
    if not data.keys() <= _FIELDS:
        # Written by a newer lmdeck with fields this one does not know: keep what it knows.
        data = {k: v for k, v in data.items() if k in _FIELDS}
    try:
        return TraceRecord(**data)
    except TypeError as exc:
        raise UnreadableLine(f"not a trace record: {exc}") from None
