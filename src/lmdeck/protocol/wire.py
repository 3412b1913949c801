"""Responses as they go on the wire: every field they were given, nothing lmdeck did not fill.

An upstream's answer is parsed into lmdeck's schemas (which keep unknown fields); writing it back
must not lose what the upstream sent, ``null`` values included (``logprobs: null``,
``system_fingerprint: null``, fields OpenAI adds later), nor invent ``null`` for optional fields
nobody set::

    >>> response = ChatCompletionResponse.model_validate(upstream_json)   # doctest: +SKIP
    >>> wire_dict(response) == upstream_json                               # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def wire_dict(model: BaseModel) -> dict[str, Any]:
    """``model`` as a JSON-ready dict: its declared fields (``None`` only when it was set), then its extra fields."""
    given = model.model_fields_set
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None and name not in given:
            continue
        out[name] = _wire_value(value)
    for name, value in (model.model_extra or {}).items():
        out[name] = _wire_value(value)
    return out


def _wire_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return wire_dict(value)
    if isinstance(value, list):
        return [_wire_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _wire_value(item) for key, item in value.items()}
    return value
