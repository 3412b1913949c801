"""OpenAPI request bodies for routes that read their JSON themselves.

The ``/v1`` routes parse their body by hand (fast, and with OpenAI's error shape), and a few
admin routes validate a raw object against a model they complete from the path. Their
operations still declare the body's schema, so the OpenAPI document (and every client or
test generated from it) knows what to send::

    @router.post("/chat/completions", openapi_extra=documented_body(ChatCompletionRequest))
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _inline(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            # A model that contains itself is left open rather than unrolled forever.
            return {} if name in seen else _inline(defs[name], defs, seen | {name})
        return {key: _inline(value, defs, seen) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    return node


def body_schema(model: type[BaseModel], *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``model``'s JSON schema with its definitions inlined (valid anywhere in an OpenAPI document),
    without the properties in ``exclude`` (those the route takes from elsewhere, such as the path)."""
    schema = model.model_json_schema()
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}), frozenset())
    if exclude:
        inlined["properties"] = {k: v for k, v in inlined.get("properties", {}).items() if k not in exclude}
        inlined["required"] = [name for name in inlined.get("required", []) if name not in exclude]
    return inlined


def documented_body(model: type[BaseModel], *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model`` (see :func:`body_schema`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(model, exclude=exclude)}},
        }
    }
