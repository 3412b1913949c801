"""A judge's verdict: the structured reply asked of it, and the strict reading of what it says.

A judge is asked for one of two shapes, chosen by whether a ``scale`` is given:

- pass/fail: ``{"reasoning": "...", "verdict": "pass" | "fail"}``;
- graded:    ``{"reasoning": "...", "score": 7, "scale": 10}``, the judge repeating the scale it used.

Routes that take ``response_format`` get it as a JSON schema (:func:`response_format`); the
others are asked (:func:`instruction`) to end with one verdict line, ``VERDICT: PASS`` /
``VERDICT: FAIL`` or ``SCORE: 7/10``. :func:`read_verdict` accepts exactly these and nothing
looser: never "the first number in the text", so a judge that reasons before answering, or
grades on another scale, is not misread as a pass. A reply it cannot read raises
:class:`VerdictError`, which a run records as an error on that row::

    read_verdict('{"reasoning": "2+2 is 4", "verdict": "pass"}', None).value    # 1.0
    read_verdict("The sum is wrong.\\nVERDICT: FAIL", None).value                # 0.0
    read_verdict('{"reasoning": "ok", "score": 8, "scale": 100}', 10)            # VerdictError: scale
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from lmdeck.evaluation.base import Score
from lmdeck.protocol.evaluation import EvaluatorError

_FENCED = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.S)
_VERDICT_LINE = re.compile(r"^VERDICT:\s*(PASS|FAIL)\s*$", re.I)
_SCORE_LINE = re.compile(r"^SCORE:\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$", re.I)
_ANY_VERDICT_LINE = re.compile(r"^\s*(VERDICT|SCORE)\s*:", re.I | re.M)


class VerdictError(EvaluatorError):
    """The judge's reply holds no verdict in the shape asked for; the message says what was wrong."""


def schema(scale: float | None) -> dict[str, Any]:
    """The JSON schema of the verdict (strict: every field required, no other field)."""
    properties: dict[str, Any] = {"reasoning": {"type": "string", "description": "why, in one or two sentences"}}
    if scale is None:
        properties["verdict"] = {"type": "string", "enum": ["pass", "fail"]}
    else:
        properties["score"] = {"type": "number", "description": f"the grade, from 0 to {_number(scale)}"}
        properties["scale"] = {"type": "number", "enum": [scale], "description": "the top of the scale used"}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def response_format(scale: float | None) -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for the verdict as JSON."""
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": schema(scale)}}


def instruction(scale: float | None, structured: bool) -> str:
    """What the judge is told about the shape of its reply."""
    if structured:
        if scale is None:
            return 'Reply with only a JSON object: {"reasoning": "<why>", "verdict": "pass" or "fail"}.'
        top = _number(scale)
        return f'Reply with only a JSON object: {{"reasoning": "<why>", "score": <0 to {top}>, "scale": {top}}}.'
    if scale is None:
        return "Give your reasoning, then end with one last line that is exactly VERDICT: PASS or VERDICT: FAIL."
    top = _number(scale)
    return f"Give your reasoning, then end with one last line that is exactly SCORE: <0 to {top}>/{top}."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _graded(score: Any, scale_used: Any, scale: float) -> float:
    for name, value in (("score", score), ("scale", scale_used)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise VerdictError(f"{name} must be a number, got {value!r}")
    if float(scale_used) != float(scale):
        raise VerdictError(f"the judge graded out of {_number(scale_used)}, not out of {_number(scale)}")
    if not 0 <= score <= scale:
        raise VerdictError(f"score {score} is outside 0-{_number(scale)}")
    return float(score) / float(scale)


def _from_json(text: str, scale: float | None) -> Score:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise VerdictError(f"the reply is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VerdictError("the reply is JSON but not an object")
    expected = set(schema(scale)["properties"])
    if set(data) != expected:
        raise VerdictError(f"the reply must have exactly the fields {sorted(expected)}, got {sorted(data)}")
    reasoning = str(data["reasoning"])
    if scale is None:
        verdict = data["verdict"]
        if verdict not in ("pass", "fail"):
            raise VerdictError(f'verdict must be "pass" or "fail", got {verdict!r}')
        return Score(1.0 if verdict == "pass" else 0.0, label=verdict, explanation=reasoning[:500])
    return Score(_graded(data["score"], data["scale"], scale), explanation=reasoning[:500])


def _from_line(text: str, scale: float | None) -> Score:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise VerdictError("the reply is empty")
    if len(_ANY_VERDICT_LINE.findall(text)) > 1:
        raise VerdictError("the reply has more than one VERDICT/SCORE line")
    last, reasoning = lines[-1], "\n".join(lines[:-1])
    if scale is None:
        match = _VERDICT_LINE.match(last)
        if not match:
            raise VerdictError("the last line is not 'VERDICT: PASS' or 'VERDICT: FAIL'")
        verdict = match.group(1).lower()
        return Score(1.0 if verdict == "pass" else 0.0, label=verdict, explanation=(reasoning or last)[:500])
    graded = _SCORE_LINE.match(last)
    if not graded:
        raise VerdictError(f"the last line is not 'SCORE: <0 to {_number(scale)}>/{_number(scale)}'")
    value = _graded(float(graded.group(1)), float(graded.group(2)), scale)
    return Score(value, explanation=(reasoning or last)[:500])


def read_verdict(reply: str, scale: float | None) -> Score:
    """The score a judge's reply gives, or :class:`VerdictError` naming what is wrong with it.

    A reply that is a JSON object (alone, or alone in a fenced block) is read as JSON;
    any other reply must end with a verdict line.
    """
    text = reply.strip()
    fenced = _FENCED.match(text)
    try:
        if fenced or text.startswith("{"):
            return _from_json(fenced.group(1) if fenced else text, scale)
        return _from_line(text, scale)
    except VerdictError as exc:
        raise VerdictError(f"the judge's reply has no valid verdict: {exc}; reply: {text[:300]!r}") from None
