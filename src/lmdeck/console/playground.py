"""The prompt playground's form: one input per declared variable, read back into typed values, and the
chat request a run sends through the pipeline.

    fields = variable_fields(version.spec)                 # [VariableField(name="name", input="text", ...)]
    choice = read_playground_form(form, version.spec)      # PlaygroundChoice, or APIError(400) naming the field
    body = choice.chat_body("greet", version.version)      # {"model": "demo", "messages": [], "prompt": {...}}

Form fields: ``var.NAME`` for each variable (a blank one is left out, so a required variable with no
default is reported missing by the render, as the API reports it), ``route``, ``max_tokens`` and
``temperature`` (blank: the version's parameters, else the route's defaults).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lmdeck.protocol import APIError
from lmdeck.protocol.registry import PromptVersionSpec, VariableSpec

#: The form field of variable ``NAME`` is ``var.NAME``.
VARIABLE_FIELD = "var."
#: The largest ``max_tokens`` the form accepts (the route may still allow less).
MAX_TOKENS_LIMIT = 1_000_000
#: The temperature range OpenAI-compatible routes accept.
TEMPERATURE_RANGE = (0.0, 2.0)
#: Characters one field may carry.
MAX_FIELD_CHARS = 100_000

InputKind = Literal["text", "number", "integer", "boolean", "json"]
_INPUTS: dict[str, InputKind] = {
    "string": "text",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "list": "json",
    "object": "json",
    "any": "json",
}


@dataclass(frozen=True)
class VariableField:
    """One variable's input: its ``name``, declared ``type``, the ``input`` that edits it, whether
    it must be given (required with no default), its default shown as a hint, and its description."""

    name: str
    type: str
    input: InputKind
    required: bool
    hint: str
    description: str


def variable_fields(spec: PromptVersionSpec) -> list[VariableField]:
    """The inputs of a version's declared variables (every variable a version uses is declared), by name."""
    return [_field(name, spec.variables[name]) for name in sorted(spec.variables)]


def _field(name: str, var: VariableSpec) -> VariableField:
    hint = "" if var.default is None else (var.default if isinstance(var.default, str) else json.dumps(var.default))
    return VariableField(
        name=name,
        type=var.type,
        input=_INPUTS[var.type],
        required=var.required and var.default is None,
        hint=hint,
        description=var.description or "",
    )


@dataclass(frozen=True)
class PlaygroundChoice:
    """What the form asks for: the variables' values, and for a run the route and sampling parameters."""

    variables: dict[str, Any] = field(default_factory=dict)
    route: str = ""
    max_tokens: int | None = None
    temperature: float | None = None

    def chat_body(self, prompt: str, version: int) -> dict[str, Any]:
        """The chat request a run sends: the prompt step renders ``prompt`` v``version`` into its messages."""
        body: dict[str, Any] = {
            "model": self.route,
            "messages": [],
            "prompt": {"name": prompt, "version": version, "variables": self.variables},
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise APIError(400, f"{name}: send text, not a file", param=name)
    if len(value) > MAX_FIELD_CHARS:
        raise APIError(400, f"{name}: at most {MAX_FIELD_CHARS} characters", param=name)
    return value


def _value(var: VariableField, raw: str) -> Any:
    where = f"variable {var.name}"
    if var.input == "text":
        return raw
    text = raw.strip()
    if var.input == "boolean":
        if text not in ("true", "false"):
            raise APIError(400, f"{where}: choose true or false", param=VARIABLE_FIELD + var.name)
        return text == "true"
    if var.input == "integer":
        try:
            return int(text)
        except ValueError:
            raise APIError(400, f"{where}: {text!r} is not a whole number", param=VARIABLE_FIELD + var.name) from None
    if var.input == "number":
        try:
            return int(text)
        except ValueError:
            pass
        number = _finite(text)
        if number is None:
            raise APIError(400, f"{where}: {text!r} is not a number", param=VARIABLE_FIELD + var.name)
        return number
    try:
        return json.loads(text)
    except ValueError as exc:
        raise APIError(
            400, f"{where}: give its {var.type} value as JSON ({exc})", param=VARIABLE_FIELD + var.name
        ) from None


def read_variables(form: Mapping[str, Any], spec: PromptVersionSpec) -> dict[str, Any]:
    """The variables' values from the form's ``var.NAME`` fields (blank ones left out).

    Raises :class:`~lmdeck.protocol.APIError` (400) naming a value that is not of its declared type;
    missing and unknown variables are left to the render, which names them as the API does.
    """
    out: dict[str, Any] = {}
    for var in variable_fields(spec):
        raw = _text(form, VARIABLE_FIELD + var.name)
        if raw == "" or (var.input != "text" and not raw.strip()):
            continue
        out[var.name] = _value(var, raw)
    return out


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _optional_number(form: Mapping[str, Any], name: str) -> float | None:
    text = _text(form, name).strip()
    if not text:
        return None
    number = _finite(text)
    if number is None:
        raise APIError(400, f"{name}: {text!r} is not a number", param=name)
    return number


def read_playground_form(form: Mapping[str, Any], spec: PromptVersionSpec) -> PlaygroundChoice:
    """The whole form read back (:func:`read_variables` plus the route and sampling parameters).

    Raises :class:`~lmdeck.protocol.APIError` (400): no route chosen, ``max_tokens`` not a whole
    number from 1 to :data:`MAX_TOKENS_LIMIT`, ``temperature`` not a number in :data:`TEMPERATURE_RANGE`.
    Whether the route exists and the key may call it is the pipeline's to say.
    """
    variables = read_variables(form, spec)
    route = _text(form, "route").strip()
    if not route:
        raise APIError(400, "route: choose the route (model) to run the prompt on", param="route")
    tokens = _optional_number(form, "max_tokens")
    if tokens is not None and (not tokens.is_integer() or not 1 <= tokens <= MAX_TOKENS_LIMIT):
        raise APIError(400, f"max_tokens: give a whole number from 1 to {MAX_TOKENS_LIMIT}", param="max_tokens")
    temperature = _optional_number(form, "temperature")
    low, high = TEMPERATURE_RANGE
    if temperature is not None and not low <= temperature <= high:
        raise APIError(400, f"temperature: give a number from {low:g} to {high:g}", param="temperature")
    return PlaygroundChoice(
        variables=variables,
        route=route,
        max_tokens=None if tokens is None else int(tokens),
        temperature=temperature,
    )
